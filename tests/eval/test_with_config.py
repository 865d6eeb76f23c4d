"""scripts/with_config.py: a checkpoint copied with config fields changed loads with them and the same weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import load_script, memory_model

from lm2 import LM2ForCausalLM

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "with_config.py"


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_the_copy_loads_with_the_new_fields_and_the_same_weights(tmp_path):
    model = memory_model(memory_write_gate="token", memory_update="replace")
    model.save_pretrained(tmp_path / "src")
    result = run(tmp_path / "src", tmp_path / "dst", "memory_write_threshold=0.5", "memory_write_route=top1")
    assert result.returncode == 0, result.stderr
    copy = LM2ForCausalLM.from_pretrained(tmp_path / "dst")
    assert copy.config.memory_write_threshold == 0.5 and copy.config.memory_write_route == "top1"
    for (name, a), (_, b) in zip(model.state_dict().items(), copy.state_dict().items()):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)
    ids = torch.randint(0, 97, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the changed settings really change what the model computes
        assert not torch.allclose(model(ids).logits, copy.eval()(ids).logits)
    assert json.loads((tmp_path / "src" / "config.json").read_text()).get("memory_write_threshold", 0) == 0


@pytest.mark.parametrize("change,expected", [
    ("memory_write_threshold=1.5", "memory_write_threshold=1.5 is invalid"),
    ("memory_write_treshold=0.1", "'memory_write_treshold' is not a field"),
    ("memory_write_threshold", "is not KEY=VALUE"),
    ("memory_slots=8", "alters the model's parameters"),
])
def test_bad_changes_are_refused_and_nothing_is_written(tmp_path, change, expected):
    memory_model(memory_write_gate="token").save_pretrained(tmp_path / "src")
    result = run(tmp_path / "src", tmp_path / "dst", change)
    assert result.returncode != 0 and expected in result.stderr
    assert not (tmp_path / "dst").exists()


def test_a_missing_source_or_an_existing_destination_is_refused(tmp_path):
    result = run(tmp_path / "nowhere", tmp_path / "dst", "memory_write_threshold=0.1")
    assert result.returncode != 0 and "config.json does not exist" in result.stderr
    memory_model().save_pretrained(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    result = run(tmp_path / "src", tmp_path / "dst", "memory_write_route=top1")
    assert result.returncode != 0 and "already exists" in result.stderr


def test_values_are_read_as_yaml():
    script = load_script("with_config")
    changed = script.changed_config({"a": 1, "b": "x", "c": None}, ["a=0.05", "b=top1", "c=null"])
    assert changed == {"a": 0.05, "b": "top1", "c": None}
    # a field of the config class that an older checkpoint's config.json lacks can be set
    assert script.changed_config({"a": 1}, ["new=2"], {"new"}) == {"a": 1, "new": 2}
    with pytest.raises(ValueError, match="'new' is not a field"):
        script.changed_config({"a": 1}, ["new=2"])
