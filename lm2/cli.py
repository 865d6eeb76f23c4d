"""`lm2 <command>`: a thin argparse front end.

Each area of the package registers its own sub-commands in a small ``commands.py`` (``register(sub)``), and
each command calls library functions. Heavy imports (torch, transformers) happen inside the handlers, so
``lm2 --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that contribute sub-commands; each has ``register(subparsers)``.
COMMAND_MODULES = [
    "lm2.data.commands",
    "lm2.train.commands",
    "lm2.eval.commands",
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


def available_cores() -> int:
    """The CPU threads this process should use by default: ``OMP_NUM_THREADS`` when it is set (the first number of
    a nested list such as "4,2"), else the cores its CPU affinity allows (a container, ``taskset`` or a batch
    scheduler may allow fewer than ``os.cpu_count()``)."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        first = omp.split(",")[0].strip()
        if not first.isdigit() or int(first) < 1:
            raise ValueError(f"OMP_NUM_THREADS={omp!r} is not a positive number of threads: unset it or set e.g. 1")
        return int(first)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform (macOS, Windows)
        return os.cpu_count() or 1


def set_threads(threads: int | None = None) -> int:
    """Make torch compute with ``threads`` CPU threads (None: ``available_cores()``) and return the number.

    Every command goes through this before it starts work (``--threads``; ``lm2 train`` also reads
    ``train.threads``). One thread per core matters on a busy machine: a thread that waits for a core stalls every
    matrix product it takes part in."""
    import torch

    threads = available_cores() if threads is None else threads
    if threads < 1:
        raise ValueError(f"--threads {threads} is invalid: it must be 1 or more")
    torch.set_num_threads(threads)
    return threads


def no_progress_bars() -> None:
    """``--no-progress``: no bar from transformers either ("Loading weights", "Writing model shards"), for the rest
    of the process (as ``lm2.eval.common.load_model`` does for every model it loads)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _leaf_parsers(parser: argparse.ArgumentParser):
    """The parsers of the commands that run something (``lm2 eval babilong``, ...), not their groups."""
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield parser
    for group in groups:
        for child in dict.fromkeys(group.choices.values()):  # aliases map to the same parser
            yield from _leaf_parsers(child)


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
    for command in _leaf_parsers(parser):  # every command, so none can be added without it
        command.add_argument("--threads", type=positive_int, default=None, metavar="N",
                             help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the cores this "
                                  "process may use)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown and hasattr(args, "overrides"):
            # lm2 demo --out_dir X: argparse leaves an unknown option before the overrides (REMAINDER) unparsed;
            # the overrides start right after it, so the order is kept
            args.overrides = [*unknown, *(args.overrides or [])]
        elif unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as done:  # --help, or a malformed command line (already reported in one line)
        return int(done.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # as typed (a checkpoint's model card names it)
    from lm2.wheels import MissingWheelError

    try:
        set_threads(args.threads)  # before any work (lm2 train applies train.threads too: lm2/train/commands.py)
        if getattr(args, "no_progress", False):
            no_progress_bars()
        result = args.func(args)
    except (UserError, ValueError, OSError, KeyError, MissingWheelError) as err:
        # Errors meant for the user (OSError: a path that is a file, unwritable, a full disk): one clear line, no
        # traceback. Set LM2_DEBUG=1 to see the traceback.
        if os.environ.get("LM2_DEBUG"):
            raise
        print(f"lm2 {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
