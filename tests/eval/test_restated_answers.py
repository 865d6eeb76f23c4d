"""scripts/restated_answers.py: which 1k training answers only the memory can give."""

from __future__ import annotations

from helpers import load_script

from lm2.data.tokenizers import gpt2_tokenizer


def test_an_earlier_answer_counts_as_a_restatement_only_in_the_full_story():
    counts = load_script("restated_answers").reach_counts
    tok = gpt2_tokenizer()
    full = counts(12, "1k", 128, None, tok)
    last = counts(12, "1k", 128, "last", tok)
    cut = counts(12, "1k", 128, "random", tok)
    # every point's questions: more answers, and an earlier answer about the person brings some far facts near
    assert full[0] > last[0] > 0
    assert full[2] < full[1]
    # one point's questions only: no earlier answer about the same person, so only the fact counts
    assert last[1] == last[2] > 0 and cut[1] == cut[2] > 0
    # with a reach of 0 tokens every fact and every earlier answer lies beyond it: all answers are counted
    zero = counts(12, "1k", 0, None, tok)
    assert zero[0] == zero[1] == zero[2] == full[0]
