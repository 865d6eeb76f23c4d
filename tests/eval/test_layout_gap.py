"""scripts/layout_gap.py: teacher-forced first-answer-token accuracy."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from helpers import load_script


class Predicts:
    """A stand-in model whose top prediction after position i is ``table[i]``."""

    def __init__(self, table: list[int], vocab: int = 10):
        self.table, self.vocab = table, vocab

    def __call__(self, ids: torch.Tensor):
        logits = torch.zeros(1, ids.shape[1], self.vocab)
        for i, token in enumerate(self.table):
            logits[0, i, token] = 1.0
        return SimpleNamespace(logits=logits)


def test_only_the_first_token_of_each_answer_is_scored_at_the_position_before_it():
    hits = load_script("layout_gap").first_answer_hits
    ids = [1, 2, 3, 4, 5, 6, 7, 8]
    labels = [-100, -100, 3, 4, -100, -100, 7, 8]  # two answers: (3, 4) and (7, 8)
    assert hits(Predicts([2, 3, 0, 0, 0, 7, 0, 0]), ids, labels) == [True, True]
    # a wrong second answer token does not count, a wrong prediction before the answer does
    assert hits(Predicts([2, 0, 9, 0, 0, 7, 0, 0]), ids, labels) == [False, True]
    assert hits(Predicts([0] * 8), ids, labels) == [False, False]
