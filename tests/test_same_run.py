"""scripts/same_run.py: two runs' training records compared step by step, and a hash of a config's samples."""

from __future__ import annotations

import json
import math

import pytest

from helpers import load_script

same_run = load_script("same_run")


def _write(path, records):
    path.mkdir(parents=True)
    lines = [json.dumps({"kind": "train", **r}) for r in records]
    lines.insert(1, json.dumps({"kind": "eval", "step": 1, "val_loss": 9.0}))  # evaluation records are not compared
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


def test_equal_runs_exit_0_and_a_difference_is_found_with_its_digits(tmp_path, capsys):
    base = [{"step": s, "loss": 1.0 / s, "grad_norm": 2.0 + s} for s in range(1, 6)]
    a = _write(tmp_path / "a", base)
    b = _write(tmp_path / "b", base)
    assert same_run.main([str(a), str(b)]) == 0
    assert "loss: equal at every step" in capsys.readouterr().out
    changed = [dict(r) for r in base]
    changed[3]["grad_norm"] = base[3]["grad_norm"] * (1 + 3e-6)  # step 4, apart in the sixth digit
    changed[4]["loss"] = base[4]["loss"] + 0.1
    c = _write(tmp_path / "c", changed)
    assert same_run.main([str(a), str(c / "metrics.jsonl")]) == 1
    out = capsys.readouterr().out
    assert "grad_norm: first differs at step 4" in out and "5 significant digits agree" in out
    assert "loss: first differs at step 5" in out


def test_agreeing_digits():
    assert same_run.agreeing_digits(1.0, 1.0) == math.inf
    assert same_run.agreeing_digits(1.234567, 1.234568) == 6
    assert same_run.agreeing_digits(1.0, 2.0) == 0


def test_missing_run_and_missing_field_are_clear_errors(tmp_path, capsys):
    a = _write(tmp_path / "a", [{"step": 1, "loss": 1.0}])
    assert same_run.main([str(a), str(tmp_path / "nowhere")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    assert same_run.main([str(a), str(a), "--fields", "loss,grad_norm"]) == 2
    assert "field 'grad_norm' is missing from step 1" in capsys.readouterr().err


def test_the_sample_hash_follows_the_data(tmp_path):
    """The same config hashes the same; another training seed (other samples) does not."""
    from lm2.train.config import load_config, save_config

    cfg = load_config("recall-tiny")
    save_config(cfg, tmp_path / "a.yaml")
    cfg.train.seed += 1
    save_config(cfg, tmp_path / "b.yaml")
    first = same_run.samples_hash(tmp_path / "a.yaml", [0, 3])
    assert first == same_run.samples_hash(tmp_path / "a.yaml", [0, 3])
    assert first != same_run.samples_hash(tmp_path / "b.yaml", [0, 3])
    assert first != same_run.samples_hash(tmp_path / "a.yaml", [0, 4])


def test_a_text_config_is_refused(tmp_path):
    with pytest.raises(ValueError, match="sample hashes are for babilong and recall"):
        same_run.samples_hash("pretrain-tiny", [0])
