"""Shareable checkpoints: each folder lm2 train writes has a model card, and transformers, asked to load it without
lm2 imported, says what it needs instead of telling the user to upgrade transformers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
import yaml

from lm2.cli import main
from lm2.train import checkpoint as ckpt
from lm2.train.model_card import parameter_counts


def test_every_checkpoint_has_a_model_card_with_what_made_it(finished_run, tmp_path, capsys):
    from lm2 import LM2ForCausalLM

    run_dir = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(dict(finished_run.to_dict(), out_dir=str(run_dir))))
    assert main(["train", str(config), "--no-progress"]) == 0
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for name in ("ckpt-000004", "ckpt-000006", "best"):
        folder = run_dir / name
        step = torch.load(folder / "trainer_state.pt", weights_only=True)["step"]
        assert ckpt.damage(folder) is None  # the card and the loader are in the manifest
        card = (folder / "README.md").read_text()
        model = LM2ForCausalLM.from_pretrained(folder)
        counts = parameter_counts(model)
        assert counts["total"] == sum(p.numel() for p in model.parameters())
        assert 0 < counts["memory"] < counts["total"]
        assert f"| parameters | {counts['total']:,} ({counts['memory']:,} in the memory modules" in card
        assert f"memory_slots {model.config.memory_slots}" in card and "memory_layers [0, 1]" in card
        tokens = torch.load(folder / "trainer_state.pt", weights_only=True)["tokens"]
        assert f"| tokens seen | {tokens:,} (padding not counted) |" in card
        assert f"packed text from {finished_run.data.source}" in card
        assert f"| command | `lm2 train {config} --no-progress` |" in card
        last_eval = [r for r in metrics if r["kind"] == "eval" and r["step"] <= step][-1]
        assert f"step {last_eval['step']}: validation loss {last_eval['val_loss']:.4f}" in card
        assert ("at this step" in card) == (last_eval["step"] == step)
        assert "import lm2" in card and 'AutoModelForCausalLM.from_pretrained("' in card
    earlier = (run_dir / "ckpt-000004" / "README.md").read_text()
    assert "at step 3, the last evaluation before this checkpoint" in earlier


LOAD_WITHOUT_LM2 = """
import json, sys
from transformers import AutoModelForCausalLM

folder, answers = sys.argv[1], {}
assert "lm2" not in sys.modules


def attempt(name, **kwargs):
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        answers[name] = "loaded " + type(model).__name__ + " " + repr(float(model(torch.arange(9)[None]).logits.sum()))
    except Exception as err:
        answers[name] = type(err).__name__ + ": " + str(err)


import torch
attempt("plain")
sys.modules["lm2"] = None  # as where lm2 is not installed: importing it fails
attempt("trusted, lm2 missing", trust_remote_code=True)
del sys.modules["lm2"]
attempt("trusted, lm2 installed", trust_remote_code=True)
open(sys.argv[2], "w").write(json.dumps(answers))  # stdout also holds transformers' "run the custom code?"
"""


def test_loading_without_lm2_says_to_install_and_import_it(finished_run, tmp_path):
    from lm2 import LM2ForCausalLM

    folder = tmp_path / "ckpt"
    shutil.copytree(finished_run.out_dir + "/ckpt-000006", folder)
    env = {**__import__("os").environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_LM2, str(folder), str(tmp_path / "answers.json")],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads((tmp_path / "answers.json").read_text())
    # Without the flag transformers runs no code from the folder: it names the flag, no longer an upgrade.
    assert "trust_remote_code=True" in answers["plain"] and "upgrade" not in answers["plain"]
    missing = answers["trusted, lm2 missing"]
    assert missing.startswith("ImportError: this folder holds an lm2 model")
    assert "pip install" in missing and "import lm2" in missing
    with torch.no_grad():
        expected = float(LM2ForCausalLM.from_pretrained(folder)(torch.arange(9)[None]).logits.sum())
    loaded, logits_sum = answers["trusted, lm2 installed"].rsplit(" ", 1)
    assert loaded == "loaded LM2ForCausalLM" and float(logits_sum) == pytest.approx(expected, rel=1e-5)
