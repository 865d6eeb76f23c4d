"""Nothing lost, nothing executed: resuming runs no code from a checkpoint, falls back from a damaged checkpoint,
an earlier run is never overwritten by accident, two runs never share an out_dir, and no NaN is ever saved."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil

import pytest
import torch
from safetensors.torch import load_file

from lm2.cli import main
from lm2.train import checkpoint as ckpt
from lm2.train import loop
from lm2.train.config import save_config
from lm2.train.loop import SegmentedLM, TrainingDiverged, train


class Trap:
    """Unpickling this touches a file: what a hostile trainer_state.pt could do instead."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def __reduce__(self):
        return pathlib.Path.touch, (self.path,)


def copy_run(cfg, tmp_path):
    """A copy of a finished run, its config, and that config as a YAML file for the CLI."""
    out = tmp_path / "run"
    shutil.copytree(cfg.out_dir, out)
    cfg = dataclasses.replace(cfg, out_dir=str(out))
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    return cfg, path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_booby_trapped_trainer_state_is_refused_and_runs_nothing(finished_run, tmp_path, capsys):
    cfg, config = copy_run(finished_run, tmp_path)
    newest = ckpt.latest(cfg.out_dir)
    state = ckpt.load_trainer_state(newest)
    fired = tmp_path / "pwned"
    state["best"] = Trap(fired)
    torch.save(state, newest / ckpt.STATE_FILE)
    ckpt.write_manifest(newest)  # whoever planted it can also write a matching manifest
    torch.load(newest / ckpt.STATE_FILE, weights_only=False)
    assert fired.exists()  # the trap is real: an unrestricted load runs it
    fired.unlink()
    assert main(["train", str(config), "--resume", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert f"{newest / ckpt.STATE_FILE} was refused" in line
    assert not fired.exists()


def test_resume_falls_back_from_a_damaged_checkpoint_and_ends_identical(finished_run, tmp_path, capsys):
    cfg, config = copy_run(finished_run, tmp_path)
    out = pathlib.Path(cfg.out_dir)
    weights = out / "ckpt-000006" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a truncated copy
    assert main(["train", str(config), "--resume", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "ckpt-000006 (model.safetensors has 1000 bytes" in err and "resuming from ckpt-000004" in err
    assert (out / "damaged-ckpt-000006").is_dir()  # kept for a look, out of the way
    a, b = load_file(str(out / "ckpt-000006" / "model.safetensors")), load_file(
        str(pathlib.Path(finished_run.out_dir) / "ckpt-000006" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_an_intact_checkpoint_names_each(finished_run, tmp_path, capsys):
    cfg, config = copy_run(finished_run, tmp_path)
    for path in ckpt.list_checkpoints(cfg.out_dir):
        (path / ckpt.MANIFEST_FILE).unlink()
    assert main(["train", str(config), "--resume"]) == 2
    line = one_error_line(capsys)
    assert "no complete checkpoint" in line and "ckpt-000006: no manifest.json" in line and "ckpt-000004" in line


def test_a_run_is_replaced_only_with_overwrite(finished_run, tmp_path, capsys):
    cfg, config = copy_run(finished_run, tmp_path)
    out = pathlib.Path(cfg.out_dir)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(["train", str(config), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert f"out_dir {out} holds a run" in line and "--resume" in line and "--overwrite" in line
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert main(["train", str(config), "--overwrite", "--no-progress", "--train.steps", "2"]) == 0
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["ckpt-000002"]  # none of the old run's is left
    assert max(json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_second_process_is_refused_naming_the_holder(lm_config, tmp_path, capsys):
    from lm2.outdir import hold

    cfg = lm_config()
    config = tmp_path / "config.yaml"
    save_config(cfg, config)
    with hold(cfg.out_dir, "lm2 train"):  # another open file description: flock refuses it as another process's
        assert main(["train", str(config)]) == 2
        assert [p.name for p in pathlib.Path(cfg.out_dir).iterdir()] == [".lm2.lock"]  # the refused run wrote nothing
    line = one_error_line(capsys)
    assert f"out_dir {cfg.out_dir} is in use by lm2 train (pid {os.getpid()} on " in line


class NaNGradient(torch.autograd.Function):
    """The identity forward; a NaN gradient backward: a finite loss whose step would poison every weight."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


def poison_gradient_at(monkeypatch, steps):
    real_forward, calls = SegmentedLM.forward, {"train": 0}

    def poisoned(self, *args, **kwargs):
        loss, n = real_forward(self, *args, **kwargs)
        if torch.is_grad_enabled():  # a training step (evaluation runs under no_grad)
            calls["train"] += 1
            if calls["train"] in steps:  # one micro-batch per step in this config
                loss = NaNGradient.apply(loss)
        return loss, n

    monkeypatch.setattr(SegmentedLM, "forward", poisoned)


def all_finite(folder) -> bool:
    return all(torch.isfinite(t).all() for t in load_file(str(folder / "model.safetensors")).values())


def test_nan_gradient_with_a_finite_loss_stops_before_the_step(lm_config, tmp_path, monkeypatch):
    poison_gradient_at(monkeypatch, {3})
    with pytest.raises(TrainingDiverged, match=r"step 3: the loss is [0-9.]+, the gradient norm nan.*ckpt-000002"):
        train(lm_config(eval={"interval": 2}), progress=False)
    out = tmp_path / "run"
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["ckpt-000002"]
    assert all_finite(out / "ckpt-000002") and all_finite(out / "best")
    assert ckpt.load_trainer_state(out / "best")["best"] < float("inf")


def test_skip_nonfinite_skips_up_to_k_steps_then_stops(lm_config, tmp_path, monkeypatch):
    poison_gradient_at(monkeypatch, {3})
    run = train(lm_config(train={"skip_nonfinite": 1}), progress=False)
    records = [r for r in run.history if r["kind"] == "train"]
    assert [r["step"] for r in records if r.get("skipped")] == [3] and run.step == 6
    assert all_finite(tmp_path / "run" / "ckpt-000006") and run.skipped == 1
    monkeypatch.undo()
    poison_gradient_at(monkeypatch, {2, 3})
    with pytest.raises(TrainingDiverged, match=r"step 3: .*1 such steps skipped before"):
        train(lm_config(out_dir=str(tmp_path / "two"), train={"skip_nonfinite": 1}), progress=False)


def test_a_model_with_nan_weights_is_never_saved(lm_config, tmp_path):
    run = loop.setup(lm_config())
    with torch.no_grad():
        next(run.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="hold NaN or inf"):
        loop.save_checkpoint(run, tmp_path / "run" / "ckpt-000000")
    assert not (tmp_path / "run" / "ckpt-000000").exists() and not list((tmp_path / "run").glob(".tmp-*"))
    assert not loop.is_better(run.cfg, float("nan"), None)


def test_tensorboard_drops_the_steps_a_resumed_run_logs_again(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = loop.MetricLog(tmp_path, enabled=True)
    for step in range(1, 7):
        log.log(step, "train", {"loss": float(step)})
    log.close()
    log = loop.MetricLog(tmp_path, enabled=True, resume_step=4)  # killed after step 6, resumed from step 4
    for step in (5, 6):
        log.log(step, "train", {"loss": 10.0 * step})
    log.close()
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload().Scalars("train/loss")
    assert [(e.step, e.value) for e in events] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0), (6, 60.0)]


def cli_train(config, *flags, **popen):
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "LM2_DEBUG": "1"}
    return subprocess.Popen([sys.executable, "-m", "lm2", "train", str(config), "--no-progress", *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)


@pytest.fixture(scope="module")
def unbroken(finished_run, tmp_path_factory):
    """The small run, trained to the end by `lm2 train` in a process of its own (one thread, as the killed ones)."""
    root = tmp_path_factory.mktemp("unbroken")
    cfg = dataclasses.replace(finished_run, out_dir=str(root / "run"))
    save_config(cfg, root / "config.yaml")
    assert cli_train(root / "config.yaml").wait() == 0
    return pathlib.Path(cfg.out_dir)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sigkill_at_a_random_point_then_resume_ends_identical(unbroken, finished_run, tmp_path, seed):
    """kill -9 when a checkpoint is being written (seeds 0, 2) or a random moment after one exists (1, 3), then
    `--resume` (or `--overwrite` if none was written) until done: the same weights and optimizer state."""
    import random
    import signal
    import time

    cfg = dataclasses.replace(finished_run, out_dir=str(tmp_path / "run"))
    config = tmp_path / "config.yaml"
    save_config(cfg, config)
    out, rng = pathlib.Path(cfg.out_dir), random.Random(seed)
    proc = cli_train(config)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        saving = out.is_dir() and any(p.name.startswith(".tmp-") for p in out.iterdir())
        if (saving if seed % 2 == 0 else ckpt.latest(out) is not None):
            time.sleep(rng.uniform(0, 0.3) if seed % 2 else 0)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished before the chosen moment
    flags = ("--resume",) if ckpt.latest(out) is not None else ("--overwrite",)
    resumed = cli_train(config, *flags)
    assert resumed.wait() == 0, resumed.stderr.read().decode()
    a, b = load_file(str(out / "ckpt-000006" / "model.safetensors")), load_file(
        str(unbroken / "ckpt-000006" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa, sb = (ckpt.load_trainer_state(p / "ckpt-000006")["optimizer"]["state"] for p in (out, unbroken))
    assert all(torch.equal(sa[k][n], sb[k][n]) for k in sb for n in sb[k])
