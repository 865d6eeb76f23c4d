"""`--no-progress` is quiet: lm-evaluation-harness's warnings, bars and the git it runs say nothing on the terminal
(they go to lm_eval.log in the output folder), run as a user runs it, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys


def test_mmlu_check_with_lm_eval_prints_nothing_on_stderr(tmp_path):
    from helpers import char_tokenizer, tiny_config

    from lm2 import LM2ForCausalLM

    LM2ForCausalLM(tiny_config()).save_pretrained(tmp_path / "model")
    char_tokenizer().save_pretrained(str(tmp_path / "model"))
    done = subprocess.run([sys.executable, "-m", "lm2", "eval", "mmlu", "--model", "model", "--subjects", "anatomy",
                           "--limit", "1", "--check-lm-eval", "--no-progress", "--out", "out", "--threads", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HOME": str(tmp_path / "hf")})  # tmp_path: no git repository
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    assert "lm-evaluation-harness: " in done.stdout and "predictions differing: 0" in done.stdout
    said = (tmp_path / "out" / "lm_eval.log").read_text()
    assert "Running loglikelihood requests" in said and "not a git repository" in said
