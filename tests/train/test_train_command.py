"""`lm2 train` as a user runs it: --threads with train.threads, --resume on a finished run, what --no-progress
keeps quiet, and one validation line per evaluation under several processes."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from lm2.cli import UserError, main
from lm2.train.commands import run_demo


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_train_threads_flag_wins_over_the_config_and_is_saved(lm_config, tmp_path, monkeypatch):
    import lm2.train.loop as loop

    seen = []
    real_step = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda run: seen.append(torch.get_num_threads()) or real_step(run))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    values = lm_config(train={"steps": 1, "threads": 3}, eval={"interval": 0}).to_dict()
    for run, flags, threads in (("config", [], 3), ("flag", ["--threads", "1"], 1), ("flag-first", [], 4)):
        config = tmp_path / f"{run}.yaml"
        config.write_text(yaml.safe_dump(dict(values, out_dir=str(tmp_path / run))))
        argv = ["train", "--threads", "4", str(config)] if run == "flag-first" else ["train", str(config), *flags]
        assert main([*argv, "--no-progress"]) == 0
        assert seen.pop() == threads
        saved = yaml.safe_load((tmp_path / run / "config.yaml").read_text())
        assert saved["train"]["threads"] == threads  # the run records what it computed with
    values["train"]["threads"] = 0  # 0: the command's default, here OMP_NUM_THREADS
    config.write_text(yaml.safe_dump(dict(values, out_dir=str(tmp_path / "default"))))
    assert main(["train", str(config), "--no-progress"]) == 0
    assert seen.pop() == 2


def test_resume_on_a_finished_run_reports_its_recorded_evaluation(finished_run, tmp_path, capsys):
    from lm2.viz.curves import read_metrics

    run_dir = tmp_path / "run"
    shutil.copytree(finished_run.out_dir, run_dir)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(dict(finished_run.to_dict(), out_dir=str(run_dir))))
    last = [r for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert main(["train", str(config), "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "6 steps (the run had finished: nothing left to train)" in out
    assert f"step 6: validation loss {last['val_loss']:.4f}" in out and "no evaluation recorded" not in out


def test_no_progress_keeps_transformers_loading_bar_quiet(lm_config, tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    cfg = lm_config(train={"steps": 1}, eval={"interval": 0})
    LlamaForCausalLM(LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(tmp_path / "llama")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()))
    active = hf_logging.is_progress_bar_enabled()
    try:
        for flags, bar in (([], True), (["--no-progress"], False)):  # the first shows the test can fail
            hf_logging.enable_progress_bar()
            assert main(["train", str(config), "--init-from", str(tmp_path / "llama"), "--overwrite", *flags]) == 0
            assert ("Loading weights" in capsys.readouterr().err) == bar
    finally:
        (hf_logging.enable_progress_bar if active else hf_logging.disable_progress_bar)()


def _worker(rank: int, port: int, values: dict) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from lm2.train.config import from_dict
    from lm2.train.loop import train

    train(from_dict(values), progress=False)


@pytest.mark.distributed
def test_two_processes_print_each_validation_once(lm_config, tmp_path, capfd):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    values = lm_config(train={"steps": 2, "warmup_steps": 1}, eval={"interval": 1, "val_batches": 1},
                       checkpoint={"interval": 0, "keep_best": False},
                       distributed={"strategy": "ddp", "backend": "gloo"}).to_dict()
    capfd.readouterr()
    mp.spawn(_worker, args=(port, values), nprocs=2, join=True)
    lines = capfd.readouterr().out.splitlines()  # the processes write to this process's stdout
    assert [line.split(":")[0] for line in lines if ": val_loss" in line] == ["step 1", "step 2"]


def test_demo_takes_overrides_first(lm_config, tmp_path):
    """`lm2 demo --out_dir DIR` (the README's command): argparse alone leaves an option before the overrides
    unparsed."""
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(lm_config(train={"steps": 1}, eval={"interval": 0}).to_dict()))
    assert main(["demo", "--config", str(config), "--out_dir", str(tmp_path / "elsewhere"), "--processes", "1",
                 "--no-progress"]) == 0
    assert (tmp_path / "elsewhere" / "ckpt-000001" / "README.md").is_file()


def test_demo_in_two_processes_trains_what_one_process_trains(lm_config, tmp_path, capfd):
    """`lm2 demo --processes 2` (its default on a CPU machine with 2 cores) launches two DDP processes over gloo:
    the same global batches, so the same weights as one process up to rounding, and one results table."""
    from safetensors.torch import load_file

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(lm_config(train={"steps": 2, "warmup_steps": 1}, eval={"interval": 0},
                                               checkpoint={"interval": 2, "keep_best": False}).to_dict()))
    for n in (1, 2):
        assert main(["demo", "--config", str(config), "--out_dir", str(tmp_path / f"p{n}"), "--processes", str(n),
                     "--threads", "2", "--no-progress"]) == 0
    out = capfd.readouterr().out
    assert "training in 2 processes of 1 thread(s) each" in out
    assert out.count("2 steps,") == 2  # each run's summary line, printed once (by process 0 under DDP)
    one, two = (load_file(str(tmp_path / f"p{n}" / "ckpt-000002" / "model.safetensors")) for n in (1, 2))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=name)


def test_demo_checks_its_processes_and_out_dir_before_starting_them(lm_config, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(lm_config(train={"steps": 1, "batch_size": 3}).to_dict()))
    with pytest.raises(UserError, match="divisible"):
        run_demo("--out_dir", str(tmp_path / "run"), config=str(config), processes=2)
    assert not (tmp_path / "run").exists()
    held = tmp_path / "held"  # a run already there: refused before any process starts, and kept
    assert main(["demo", "--config", str(config), "--out_dir", str(held), "--processes", "1", "--train.batch_size", "2",
                 "--no-progress"]) == 0
    before = sorted(p.name for p in held.iterdir())
    with pytest.raises(ValueError, match="holds a run"):
        run_demo("--out_dir", str(held), "--train.batch_size", "2", config=str(config), processes=2)
    assert sorted(p.name for p in held.iterdir()) == before
