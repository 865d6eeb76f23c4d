"""`lm2 <command>`: a thin argparse front end.

Each area of the package registers its own sub-commands in a small ``commands.py`` (``register(sub)``), and
each command calls library functions. Heavy imports (torch, transformers) happen inside the handlers, so
``lm2 --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands; each has ``register(subparsers)``.
COMMAND_MODULES = [
    "lm2.data.commands",
    "lm2.train.commands",
    "lm2.eval.commands",
    "lm2.viz.commands",
    "lm2.commands",
]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm2", description="LM2: Large Memory Models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:  # that area is not there (yet); the others still work
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from lm2.data.wheels import MissingWheelError

    try:
        result = args.func(args)
    except (UserError, ValueError, FileNotFoundError, KeyError, MissingWheelError) as err:
        # Errors meant for the user: one clear line, no traceback. Set LM2_DEBUG=1 to see the traceback.
        import os

        if os.environ.get("LM2_DEBUG"):
            raise
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"lm2 {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
