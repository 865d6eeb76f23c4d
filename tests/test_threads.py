"""`--threads`: every command takes it, its default is the cores this process may use (OMP_NUM_THREADS, else the
CPU affinity), and it is what torch computes with once the command's work starts (lm2 train and train.threads:
tests/train/test_train_command.py)."""

from __future__ import annotations

import os

import pytest
import torch

import lm2.commands
from lm2.cli import COMMANDS, available_cores, build_parser, main, set_threads


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_default_is_omp_num_threads_else_the_cpu_affinity(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    assert available_cores() == 3  # the cores this process may run on, not os.cpu_count()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested parallelism: the outer level
    assert available_cores() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='lots' is not a positive number"):
        available_cores()
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.delattr(os, "sched_getaffinity")  # macOS, Windows
    assert available_cores() == (os.cpu_count() or 1)


def test_every_command_takes_threads():
    import argparse

    def leaves(parser):  # the parsers of the commands that run something, not their groups
        groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return [leaf for g in groups for child in g.choices.values() for leaf in leaves(child)] or [parser]

    commands = {parser.prog: parser for parser in leaves(build_parser())}
    assert {"lm2 train", "lm2 demo", "lm2 eval babilong", "lm2 eval mmlu", "lm2 generate", "lm2 inspect memory",
            "lm2 model stream", "lm2 score babilong"} <= set(commands)
    assert set(commands) == {f"lm2 {name}" for name in COMMANDS}  # the table is every command
    for prog, parser in commands.items():
        assert "--threads" in parser._option_string_actions, prog


def test_the_flag_and_the_default_reach_torch_before_the_work(monkeypatch):
    seen = []
    monkeypatch.setattr(lm2.commands, "run_stream", lambda: seen.append(torch.get_num_threads()))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    torch.set_num_threads(1)
    assert main(["model", "stream", "--threads", "2"]) == 0
    assert main(["model", "stream"]) == 0
    assert seen == [2, 3]
    assert set_threads(None) == 3 == torch.get_num_threads()


def test_a_malformed_omp_num_threads_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert main(["model", "stream", "--tokens", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OMP_NUM_THREADS='lots' is not a positive number of threads" in err
