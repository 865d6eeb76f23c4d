"""`lm2 eval babilong --data PATH`: a local copy of the official BABILong release, in each layout it is distributed
in, goes through the prompts, decoding, CSVs and scores of generated samples; anything else is one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import RELEASE_LAYOUTS, write_release

from lm2.data.babilong import build_samples
from lm2.data.babilong_release import open_release
from lm2.eval.babilong import evaluate_babilong
from lm2.eval.common import LoadedModel

TASKS, LENGTHS, N = ["qa1", "qa2"], ["0k", "1k"], 4


def generated():
    return [s for task in TASKS for length in LENGTHS for s in build_samples(task, length, N, split="test", seed=0)]


def half_right(scripted_lm, tokenizer):
    """Right on some samples and wrong on others, by the prompt's length."""
    return scripted_lm(tokenizer, lambda prompt: "kitchen" if len(prompt) % 2 else "the hallway.")


@pytest.mark.parametrize("layout", RELEASE_LAYOUTS)
def test_each_layout_reads_back_the_samples_written(layout, tmp_path):
    if layout == "arrow":
        pytest.importorskip("datasets")
    samples = generated()
    release = open_release(write_release(samples, tmp_path, layout))
    assert release.tasks == TASKS and release.lengths == LENGTHS
    read = [s for task in TASKS for length in LENGTHS for s in release.samples(task, length)]
    assert [(s.task, s.length, s.context, s.question, s.target, s.n_tokens) for s in read] == [
        (s.task, s.length, s.context, s.question, s.target, s.n_tokens) for s in samples]
    assert [s.question for s in release.samples("QA1", "1000", 2)] == [s.question for s in samples[N : N + 2]]


@pytest.mark.parametrize("layout, fmt", [(layout, "instruction") for layout in RELEASE_LAYOUTS]
                         + [("json-lines", "finetune")])
def test_the_release_scores_as_the_same_samples_generated(layout, fmt, gpt2, scripted_lm, tmp_path):
    """The same samples through --data and through the generated path: the same answers, CSVs and scores."""
    if layout == "arrow":
        pytest.importorskip("datasets")
    model = LoadedModel(half_right(scripted_lm, gpt2), gpt2, path=Path("rigged"), name="rigged")
    data = write_release(generated(), tmp_path / "release", layout)
    ours = evaluate_babilong(model, TASKS, LENGTHS, n=N, fmt=fmt, segment_length=200, out_dir=tmp_path / "gen",
                             progress=False)
    theirs = evaluate_babilong(model, TASKS, LENGTHS, fmt=fmt, segment_length=200, out_dir=tmp_path / "data",
                               progress=False, data=data)
    assert theirs["accuracy"] == ours["accuracy"]
    assert {a for per_task in ours["accuracy"].values() for a in per_task.values()} - {0.0, 100.0}  # a real check
    assert theirs["samples"] == ours["samples"] == {t: {n: N for n in LENGTHS} for t in TASKS}
    assert theirs["data"] == str(data.resolve()) and ours["data"] is None
    for task in TASKS:
        for length in LENGTHS:
            name = f"{task}_{length}.csv"
            assert (tmp_path / "data" / name).read_bytes() == (tmp_path / "gen" / name).read_bytes()


def test_the_command_evaluates_a_release_and_says_so(gpt2, tmp_path, capsys):
    from helpers import memory_model

    from lm2.cli import main

    model_dir = tmp_path / "model"
    memory_model(vocab_size=len(gpt2), sliding_window=64).save_pretrained(model_dir)
    gpt2.save_pretrained(str(model_dir))
    data = write_release(generated(), tmp_path / "release", "parquet-by-length")
    out = tmp_path / "out"
    assert main(["eval", "babilong", "--model", str(model_dir), "--data", str(data), "--tasks", "qa1,qa2",
                 "--lengths", "0k,1k", "--n", "2", "--max-new-tokens", "2", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"2 samples each (the official release in {data})" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data"] == str(data.resolve()) and summary["n"] == 2
    assert sorted(p.name for p in out.glob("*.csv")) == ["qa1_0k.csv", "qa1_1k.csv", "qa2_0k.csv", "qa2_1k.csv"]
    # a resumed run must read the same release
    assert main(["eval", "babilong", "--model", str(model_dir), "--tasks", "qa1,qa2", "--lengths", "0k,1k",
                 "--n", "2", "--max-new-tokens", "2", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert "data" in capsys.readouterr().err


def _error(argv, capsys) -> str:
    from lm2.cli import main

    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("case, expected", [
    ("missing", ["does not exist", "RMT-team/babilong", "RMT-team/babilong-1k-samples", "<length>/<task>-*.parquet"]),
    ("file", ["is a file"]),
    ("wrong-layout", ["holds no BABILong data", "found notes.txt, qa1/", "[data/]<task>/<length>.json[l]"]),
    ("empty", ["the folder is empty"]),
    ("no-such-length", ["holds no qa1 samples at length 4k: it holds qa1, qa2 at 0k, 1k"]),
    ("no-input-column", ["no column input"]),
    ("second-shard-without-input", ["qa1-00001-of-00002.parquet: no column input"]),
    ("lfs-pointer", ["Git LFS pointer"]),
    ("bad-json", ["0k.json:1: not valid JSON"]),
    ("too-few", ["holds 4 qa1 samples at 0k, fewer than the 5 asked for"]),
    ("twice", ["qa1 at 0k twice"]),
])
def test_bad_data_is_one_clear_line(case, expected, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    data, lengths, n = tmp_path / "data", "0k", "2"
    samples = [s for s in generated() if s.length == "0k" or s.task == "qa1"]
    if case == "file":
        data.write_text("not a folder")
    elif case == "wrong-layout":
        (data / "qa1").mkdir(parents=True)
        (data / "qa1" / "notes.md").write_text("hi")
        (data / "notes.txt").write_text("hi")
    elif case == "empty":
        data.mkdir()
    elif case in ("no-such-length", "too-few"):
        write_release(generated(), data, "json-lines")
        lengths, n = ("4k", "2") if case == "no-such-length" else ("0k", "5")
    elif case == "no-input-column":
        (data / "0k").mkdir(parents=True)
        pq.write_table(pa.table({"question": ["q"], "target": ["t"], "context": ["c"]}), data / "0k" / "qa1.parquet")
    elif case == "second-shard-without-input":  # found before the model loads, not after the first shard
        (data / "0k").mkdir(parents=True)
        pq.write_table(pa.table({"question": ["q"], "target": ["t"], "input": ["c"]}),
                       data / "0k" / "qa1-00000-of-00002.parquet")
        pq.write_table(pa.table({"question": ["q"], "target": ["t"]}), data / "0k" / "qa1-00001-of-00002.parquet")
    elif case == "lfs-pointer":
        (data / "0k").mkdir(parents=True)
        (data / "0k" / "qa1-00000-of-00001.parquet").write_text(
            "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 29200\n")
    elif case == "bad-json":
        (data / "qa1").mkdir(parents=True)
        (data / "qa1" / "0k.json").write_text('{"input": "a", "question": \n')
    elif case == "twice":
        write_release(samples, data, "json-lines")
        write_release(samples, data, "parquet-by-length")
    err = _error(["eval", "babilong", "--model", str(tmp_path / "no-model"), "--data", str(data), "--tasks", "qa1",
                  "--lengths", lengths, "--n", n, "--out", str(tmp_path / "out")], capsys)
    for text in expected:
        assert text in err
