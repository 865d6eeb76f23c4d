"""`lm2 data babi|babilong|tokenizer` and `lm2 score babilong`, run in-process through lm2.cli.main."""

from __future__ import annotations

import csv
import json

from lm2.cli import main
from lm2.data.babi import read_babi


def test_babi_text_and_jsonl(tmp_path, capsys):
    assert main(["data", "babi", "--task", "qa2", "--n", "7", "--split", "test"]) == 0
    text = capsys.readouterr().out
    stories = read_babi(text, task="qa2")
    assert sum(line.answer is not None for s in stories for line in s.lines) == 7
    assert text.endswith("\n") and "\t" in text.splitlines()[-1]  # the last story ends at the 7th question
    out = tmp_path / "q.jsonl"
    assert main(["data", "babi", "--task", "qa1", "--n", "3", "--format", "jsonl", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and {"facts", "question", "answer"} <= set(rows[0])


def test_babilong_writes_samples(tmp_path, capsys):
    out = tmp_path / "b.jsonl"
    assert main(["data", "babilong", "--task", "qa1", "--length", "1k", "--n", "3", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["length"] == "1k" and r["n_tokens"] <= 700 for r in rows)


def test_user_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "x.jsonl")
    assert main(["data", "babilong", "--task", "qa1", "--length", "4q", "--n", "1", "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown BABILong length '4q'" in err and "\n" not in err
    assert main(["data", "babi", "--task", "qa42", "--n", "1"]) == 2
    assert "unknown bAbI task" in capsys.readouterr().err
    assert main(["score", "babilong", str(tmp_path / "none.csv"), "--task", "qa1"]) == 2
    assert "no such CSV" in capsys.readouterr().err


def test_tokenizer_command(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Mary went to the kitchen. John took the apple there. " * 100)
    out = tmp_path / "tok"
    assert main(["data", "tokenizer", "--corpus", str(corpus), "--vocab-size", "300", "--out", str(out)]) == 0
    assert (out / "tokenizer.json").exists() and "trained a byte-level BPE" in capsys.readouterr().out
    (tmp_path / "empty.txt").write_text("")
    assert main(["data", "tokenizer", "--corpus", str(tmp_path / "empty.txt"), "--vocab-size", "300",
                 "--out", str(tmp_path / "t2")]) == 2
    assert "empty.txt" in capsys.readouterr().err


def test_score_command(tmp_path, capsys):
    path = tmp_path / "out.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["target", "output", "question"])
        writer.writerows([["kitchen", "The kitchen.", "Where is Mary?"], ["garden", "office", "Where is John?"],
                          ["office", "office", "Where is John?"], ["hallway", "hallway or garden", "Where is Sandra?"]])
    assert main(["score", "babilong", str(path), "--task", "qa1"]) == 0
    assert capsys.readouterr().out.strip() == "qa1: 50.00% (label rule)"
    assert main(["score", "babilong", str(path), "--task", "qa1", "--rule", "exact"]) == 0
    assert capsys.readouterr().out.strip() == "qa1: 25.00% (exact rule)"


def test_babi_and_babilong_both_write_to_stdout_unless_out(tmp_path, capsys):
    for command in (["babi", "--format", "jsonl"], ["babilong", "--length", "0k"]):
        assert main(["data", *command, "--task", "qa1", "--n", "3"]) == 0
        captured = capsys.readouterr()
        rows = [json.loads(line) for line in captured.out.splitlines()]
        assert len(rows) == 3 and "wrote" not in captured.err, command
        out = tmp_path / f"{command[0]}.jsonl"
        assert main(["data", *command, "--task", "qa1", "--n", "3", "--out", str(out)]) == 0
        assert capsys.readouterr().out == "" and out.read_text().splitlines() == captured.out.splitlines()
