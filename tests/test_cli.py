"""The command table: README.md's table of commands is lm2.cli.COMMANDS, and each library function it names
exists and is what the command's function calls."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from lm2.cli import COMMANDS, command_function, main

README = Path(__file__).parents[1] / "README.md"


def readme_table() -> dict[str, tuple[str, list[str]]]:
    rows = re.findall(r"^\| `lm2 ([a-z ]+)` \| `([\w.]+)` \| (.+) \|$", README.read_text(encoding="utf-8"), re.M)
    return {name: (function, re.findall(r"`([\w.]+)`", calls)) for name, function, calls in rows}


def resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_readme_table_is_the_command_table():
    table = readme_table()
    assert set(table) == set(COMMANDS)
    for name, (function, calls) in table.items():
        assert COMMANDS[name] == function.rpartition(".")[0] + ":" + function.rpartition(".")[2], name
        source = inspect.getsource(command_function(name))
        for dotted in calls:
            assert callable(resolve(dotted)), dotted
            assert dotted.rpartition(".")[2] + "(" in source, (name, dotted)  # the command calls it


def test_flags_come_from_the_signature(capsys):
    assert main(["data", "babi", "--help"]) == 0
    usage = capsys.readouterr().out
    for flag in ("--task TASK", "--split {train,test}", "--n N", "--format {babi,jsonl}", "--out OUT", "--threads"):
        assert flag in usage, flag
    assert "number of questions" in usage  # the docstring is the help


def test_an_unknown_flag_is_one_line(capsys):
    assert main(["data", "babi", "--task", "qa1", "--tsk", "qa2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unrecognized arguments: --tsk qa2" in err


def test_every_flag_has_help():
    for name in COMMANDS:
        func = command_function(name)
        documented = set(re.findall(r"^    (\w+): ", inspect.getdoc(func).partition("\nArgs:\n")[2], re.M))
        flags = {p for p in inspect.signature(func).parameters if not p.startswith("_") and p != "overrides"}
        assert flags <= documented, (name, flags - documented)
