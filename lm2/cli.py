"""`lm2 <command>`: the command line, generated from the typed signatures of the functions in ``COMMANDS``.

Each command is a function; its keyword-only parameters are the flags (``max_new_tokens`` -> ``--max-new-tokens``),
its other parameters the positional arguments, the annotation the type (``bool``: a switch; ``Literal``: choices;
``list``: one or more values; ``Annotated[T, parse]``: ``parse`` checks the text), the default the default, and
the docstring the help (first line, text, then ``Args:`` with one ``name: help`` each). A ``*overrides`` parameter
takes the ``--section.field VALUE`` options no flag claims (``lm2 train``). Heavy imports (torch, transformers)
happen inside the commands.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
import types
import typing
from typing import Annotated, Literal

# Each command and the function that runs it (README.md, "Commands", lists the library functions they call).
COMMANDS = {
    "data babi": "lm2.data.commands:run_babi",
    "data babilong": "lm2.data.commands:run_babilong",
    "data tokenizer": "lm2.data.commands:run_tokenizer",
    "score babilong": "lm2.eval.commands:run_score_babilong",
    "train": "lm2.train.commands:run_train",
    "demo": "lm2.train.commands:run_demo",
    "recipe": "lm2.train.commands:run_recipe",
    "eval babilong": "lm2.eval.commands:run_babilong",
    "eval mmlu": "lm2.eval.commands:run_mmlu",
    "eval harness": "lm2.eval.commands:run_harness",
    "eval recall": "lm2.eval.commands:run_recall",
    "eval perplexity": "lm2.eval.commands:run_perplexity",
    "generate": "lm2.commands:run_generate",
    "inspect memory": "lm2.commands:run_inspect_memory",
    "model stream": "lm2.commands:run_stream",
}
GROUPS = {
    "data": "generate bAbI / BABILong data, train a tokenizer",
    "score": "score model outputs",
    "eval": "evaluate a model: BABILong, MMLU, any lm-eval task, perplexity",
    "inspect": "look inside a model",
    "model": "build and inspect LM2 models",
}


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


PositiveInt = Annotated[int, _int_at_least(1)]
"""An integer >= 1 (counts, sizes, lengths)."""
NonNegativeInt = Annotated[int, _int_at_least(0)]
"""An integer >= 0."""


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


def command_function(name: str):
    """The function ``COMMANDS[name]`` names."""
    module, _, function = COMMANDS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def _docs(func) -> tuple[str, str | None, dict[str, str]]:
    """(first line, the text before ``Args:``, {parameter: help}) of a command's docstring."""
    text, _, args = (inspect.getdoc(func) or "").partition("\nArgs:\n")
    summary, _, description = text.partition("\n\n")
    helps = {name: " ".join(text.split()) for name, text in re.findall(r"^    (\w+): (.*(?:\n     +.*)*)", args, re.M)}
    return " ".join(summary.split()), description.strip() or None, helps


def _argument(tp, default) -> dict:
    """argparse's keywords for a parameter of type ``tp`` with ``default`` (``inspect.Parameter.empty``: none)."""
    kw: dict = {"required": True} if default is inspect.Parameter.empty else {"default": default}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None: X
        tp = next(t for t in typing.get_args(tp) if t is not type(None))
    if tp is bool:
        return {**kw, "action": "store_true"}
    if typing.get_origin(tp) is Annotated:
        return {**kw, "type": tp.__metadata__[0]}
    if typing.get_origin(tp) is Literal:
        return {**kw, "choices": list(typing.get_args(tp))}
    if typing.get_origin(tp) is list:
        return {**kw, "nargs": "+", "type": typing.get_args(tp)[0]}
    return {**kw, "type": tp}


def _add_command(sub, name: str, func) -> None:
    summary, description, helps = _docs(func)
    p = sub.add_parser(name, help=summary, description=description,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(func, include_extras=True)
    params = inspect.signature(func).parameters
    for param in params.values():
        if param.name.startswith("_"):  # given by main, not the user (_argv)
            continue
        if param.kind is param.VAR_POSITIONAL:
            p.set_defaults(_overrides=param.name)
            continue
        kw = _argument(hints[param.name], param.default)
        if param.kind is param.KEYWORD_ONLY:
            p.add_argument("--" + param.name.replace("_", "-"), dest=param.name, help=helps.get(param.name), **kw)
        else:
            kw.pop("required", None)
            p.add_argument(param.name, help=helps.get(param.name), **kw)
    if "threads" not in params:  # every command takes it, so none can be added without it
        p.add_argument("--threads", type=PositiveInt.__metadata__[0], default=None,
                       help="CPU threads for torch (default: OMP_NUM_THREADS if set, else the cores it may use)")
    p.set_defaults(_func=func, _command=name)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lm2", description="LM2: Large Memory Models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name in COMMANDS:
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            groups[group] = sub.add_parser(group, help=GROUPS[group]).add_subparsers(
                dest=f"{group}_command", metavar="SUBCOMMAND", required=True)
        _add_command(groups[group] if group else sub, leaf, command_function(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown and not hasattr(args, "_overrides"):
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as done:  # --help, or a malformed command line (already reported in one line)
        return int(done.code or 0)
    kwargs = vars(args)
    func, command = kwargs.pop("_func"), kwargs.pop("_command")
    params = inspect.signature(func).parameters
    positional = [kwargs.pop(p.name) for p in params.values() if p.kind is p.POSITIONAL_ONLY]
    if kwargs.pop("_overrides", None):
        positional += unknown  # in the order typed
    if "_argv" in params:
        kwargs["_argv"] = list(sys.argv[1:] if argv is None else argv)  # as typed (a model card names it)
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    from lm2.wheels import MissingWheelError

    try:
        set_threads(args.threads)  # before any work (lm2 train applies train.threads too: lm2/train/commands.py)
        if getattr(args, "no_progress", False):
            no_progress_bars()
        result = func(*positional, **kwargs)
    except (UserError, ValueError, OSError, KeyError, MissingWheelError) as err:
        # Errors meant for the user (OSError: a path that is a file, unwritable, a full disk): one clear line, no
        # traceback. Set LM2_DEBUG=1 to see the traceback.
        if os.environ.get("LM2_DEBUG"):
            raise
        print(f"lm2 {command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
