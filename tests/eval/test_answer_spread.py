"""scripts/answer_spread.py: the answers a model gives against the targets, and accuracy by question form."""

from __future__ import annotations

import csv
import sys

from helpers import load_script

from lm2.data.babilong import build_samples


def test_every_qa5_question_falls_in_one_of_its_five_forms():
    """bAbI's qa5 asks five kinds of question; with people and objects replaced, its generated questions (both
    splits) give exactly those five forms, and no name is left in them."""
    form = load_script("answer_spread").question_form
    samples = build_samples("qa5", "0k", 150, split="train", seed=1) + build_samples("qa5", "0k", 50, split="test")
    forms = {form(s.question) for s in samples}
    assert forms == {"What did P give to P?", "Who gave the O?", "Who gave the O to P?", "Who received the O?",
                     "Who did P give the O to?"}


def test_the_spread_counts_first_words_and_scores_each_form(tmp_path, capsys, monkeypatch):
    spread = load_script("answer_spread")
    rows = [("Bill", "Fred", "Who received the milk?"), ("Jeff", "Jeff\nMary", "Who received the apple?"),
            ("milk", "football.", "What did Jeff give to Bill?"), ("apple", "apple", "What did Fred give to Mary?"),
            ("Mary", "Fred", "Who gave the apple?")]
    folder = tmp_path / "eval"
    folder.mkdir()
    with open(folder / "qa5_0k.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["target", "output", "question"])
        writer.writerows(rows)
    monkeypatch.setattr(sys, "argv", ["answer_spread.py", str(folder), "--task", "5"])
    spread.main()
    out = " ".join(capsys.readouterr().out.split())  # spacing aside
    assert "answers given (4 distinct): Fred 2, Jeff 1, football 1, apple 1" in out  # "football." read as football
    assert "answers wanted (5 distinct)" in out
    assert "Who received the O? 50.0% of 2" in out  # "Jeff\nMary": the first line is the answer
    assert "What did P give to P? 50.0% of 2" in out
    assert "Who gave the O? 0.0% of 1" in out
