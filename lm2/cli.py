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


class Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line like every other user error (not the whole usage first)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is invalid: it must be {low} or more")
        return value

    parse.__name__ = "int"  # argparse names the type in "invalid int value"
    return parse


positive_int = _int_at_least(1)
"""An argparse type: an integer >= 1 (counts, sizes, lengths)."""
nonnegative_int = _int_at_least(0)
"""An argparse type: an integer >= 0."""


def one_line(err: BaseException) -> str:
    """The message of a user error on one line; an OSError names its file."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or type(err).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lm2", description="LM2: Large Memory Models")
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
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, or a malformed command line (already reported in one line)
        return int(done.code or 0)
    from lm2.data.wheels import MissingWheelError

    try:
        result = args.func(args)
    except (UserError, ValueError, OSError, KeyError, MissingWheelError) as err:
        # Errors meant for the user (OSError: a path that is a file, unwritable, a full disk): one clear line, no
        # traceback. Set LM2_DEBUG=1 to see the traceback.
        import os

        if os.environ.get("LM2_DEBUG"):
            raise
        print(f"lm2 {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
