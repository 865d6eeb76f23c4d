"""`--no-progress` is quiet: lm-evaluation-harness's warnings, bars and the git it runs say nothing on the terminal
(they go to lm_eval.log in the output folder), run as a user runs it, in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

TASK = {"task": "lm2_quiet_rooms", "dataset_path": "json", "test_split": "test", "output_type": "multiple_choice",
        "doc_to_text": "{{question}}", "doc_to_choice": "{{choices}}", "doc_to_target": "answer",
        "metric_list": [{"metric": "acc"}], "metadata": {"version": 1.0}}


@pytest.mark.parametrize("command", ["mmlu", "harness"])
def test_commands_running_lm_eval_print_nothing_on_stderr(command, tmp_path):
    from helpers import char_tokenizer, tiny_config

    from lm2 import LM2ForCausalLM

    LM2ForCausalLM(tiny_config()).save_pretrained(tmp_path / "model")
    char_tokenizer().save_pretrained(str(tmp_path / "model"))
    if command == "mmlu":
        args, printed = ["--subjects", "anatomy", "--limit", "1"], "Average"
    else:  # a task over a local file, as the harness's offline use goes
        (tmp_path / "tasks").mkdir()
        (tmp_path / "rooms.jsonl").write_text('{"question": "Where is Mary?", "choices": ["kitchen", "garden"], '
                                               '"answer": 0}\n')
        task = dict(TASK, dataset_kwargs={"data_files": {"test": str(tmp_path / "rooms.jsonl")}})
        (tmp_path / "tasks" / "rooms.yaml").write_text(yaml.safe_dump(task))
        args, printed = ["--tasks", "lm2_quiet_rooms", "--include-path", "tasks"], "lm2_quiet_rooms"
    done = subprocess.run([sys.executable, "-m", "lm2", "eval", command, "--model", "model", *args, "--no-progress",
                           "--out", "out", "--threads", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HOME": str(tmp_path / "hf")})  # tmp_path: no git repository
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""
    assert printed in done.stdout
    said = (tmp_path / "out" / "lm_eval.log").read_text()
    assert "Running loglikelihood requests" in said and "not a git repository" in said
