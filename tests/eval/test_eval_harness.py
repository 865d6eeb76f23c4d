"""`lm2 eval harness`: any lm-evaluation-harness task on an lm2 checkpoint, offline, on tasks over local files. The
harness's accuracy must be the one found by scoring the same multiple-choice items directly with the model."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("lm_eval")

TASKS = {  # two small multiple-choice tasks over local JSON-lines files
    "lm2_fixture_capitals": [
        ("What is the capital of France?", ["Paris", "Rome", "Berlin"], 0),
        ("What is the capital of Italy?", ["Madrid", "Rome", "Paris"], 1),
        ("What is the capital of Spain?", ["Lisbon", "Vienna", "Madrid"], 2),
        ("What is the capital of Germany?", ["Berlin", "Oslo", "Athens"], 0),
        ("What is the capital of Norway?", ["Stockholm", "Oslo", "Dublin"], 1),
        ("What is the capital of Greece?", ["Athens", "Sofia", "Prague"], 0),
    ],
    "lm2_fixture_rooms": [
        ("Mary went to the kitchen. Where is Mary?", ["kitchen", "garden"], 0),
        ("John went to the garden. Where is John?", ["office", "garden"], 1),
        ("Sandra went to the office. Where is Sandra?", ["office", "hallway"], 0),
        ("Daniel went to the hallway. Where is Daniel?", ["bedroom", "hallway"], 1),
    ],
}


def write_tasks(folder):
    """One lm-eval task YAML per fixture task (dataset_path: json over a local file), as a user would write."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    for name, items in TASKS.items():
        data = folder / f"{name}.jsonl"
        data.write_text("".join(json.dumps({"question": q, "choices": c, "answer": a}) + "\n" for q, c, a in items))
        (folder / f"{name}.yaml").write_text(yaml.safe_dump({
            "task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "output_type": "multiple_choice", "doc_to_text": "Question: {{question}}\nAnswer:",
            "doc_to_choice": "{{choices}}", "doc_to_target": "answer",
            "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0}}))
    return folder


@torch.no_grad()
def direct_scores(model, tokenizer, name, limit=None):
    """Per item: each choice's log-likelihood after the prompt, one unbatched forward per choice, and whether the
    most likely choice is the answer."""
    from helpers import direct_loglikelihood

    lls, right = [], []
    for question, choices, answer in TASKS[name][:limit]:
        scores = [direct_loglikelihood(model, tokenizer, f"Question: {question}\nAnswer:", f" {choice}")
                  for choice in choices]
        lls.append(scores)
        right.append(max(range(len(scores)), key=scores.__getitem__) == answer)
    return lls, right


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from helpers import memory_model

    from lm2.data.tokenizers import gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    folder = tmp_path_factory.mktemp("harness") / "model"
    memory_model(vocab_size=len(tokenizer)).save_pretrained(folder)
    tokenizer.save_pretrained(str(folder))
    return folder


def test_harness_accuracy_is_the_direct_log_likelihood_accuracy(checkpoint, tmp_path):
    from lm2.eval.common import load_model
    from lm2.eval.lm_eval_adapter import evaluate_harness, task_manager

    tasks = write_tasks(tmp_path / "tasks")
    loaded = load_model(checkpoint)
    results = evaluate_harness(loaded, ["lm2_fixture_*"], limit=5, batch_size=3, log_samples=True,
                               out_dir=tmp_path / "out", manager=task_manager(tasks, include_defaults=False))
    assert sorted(results["results"]) == sorted(TASKS)  # the glob selected both tasks
    for name in TASKS:
        lls, right = direct_scores(loaded.model, loaded.tokenizer, name, limit=5)
        assert results["results"][name]["acc,none"] == pytest.approx(sum(right) / len(right), abs=1e-9)
        samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
        assert [[float(r[0]) for r in s["filtered_resps"]] for s in samples] == [
            pytest.approx(item, abs=1e-4) for item in lls]
    assert 0 < sum(direct_scores(loaded.model, loaded.tokenizer, "lm2_fixture_capitals")[1]) < 6  # not degenerate
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["results"] == json.loads(json.dumps(results["results"]))
    assert saved["lm2"]["tasks"] == sorted(TASKS) and saved["lm2"]["limit"] == 5
    assert len((tmp_path / "out" / "samples_lm2_fixture_rooms.jsonl").read_text().splitlines()) == 4


def test_lm2_is_a_harness_model_type(checkpoint, tmp_path):
    from lm_eval import simple_evaluate

    from lm2.eval.common import load_model
    from lm2.eval.lm_eval_adapter import register_lm2, task_manager

    register_lm2()
    register_lm2()  # a second registration is a no-op
    tasks = write_tasks(tmp_path / "tasks")
    results = simple_evaluate(model="lm2", model_args=f"pretrained={checkpoint},batch_size=2",
                              tasks=["lm2_fixture_rooms"], task_manager=task_manager(tasks, include_defaults=False),
                              verbosity="ERROR")
    loaded = load_model(checkpoint)
    _, right = direct_scores(loaded.model, loaded.tokenizer, "lm2_fixture_rooms")
    assert results["results"]["lm2_fixture_rooms"]["acc,none"] == pytest.approx(sum(right) / len(right))


def test_the_command_runs_local_tasks_and_refuses_unknown_ones(checkpoint, tmp_path, capsys):
    from lm2.cli import main

    tasks = write_tasks(tmp_path / "tasks")
    out = tmp_path / "out"
    assert main(["eval", "harness", "--model", str(checkpoint), "--tasks", "lm2_fixture_capitals,lm2_fixture_rooms",
                 "--include-path", str(tasks), "--num-fewshot", "1", "--batch-size", "4", "--out", str(out),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "lm2_fixture_capitals" in printed and f"written to {out}/results.json" in printed
    saved = json.loads((out / "results.json").read_text())
    assert saved["n-shot"] == {"lm2_fixture_capitals": 1, "lm2_fixture_rooms": 1}
    assert saved["lm2"]["model"] == str(checkpoint) and saved["lm2"]["model_kind"] == "lm2"
    assert all(0 <= saved["results"][t]["acc,none"] <= 1 for t in TASKS)

    code = main(["eval", "harness", "--model", str(checkpoint), "--tasks", "lm2_fixture_rooms,no_such_task_xyz",
                 "--include-path", str(tasks), "--out", str(tmp_path / "out2")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "unknown lm-eval task no_such_task_xyz" in err and not (tmp_path / "out2").exists()
