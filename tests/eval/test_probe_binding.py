"""scripts/probe_binding.py: the counterfactual probe of qa1 binding, checked with models whose answers are known.

A word-level tokenizer over the words of qa1's 0k prompts makes every room one token, so a hand-written model can
answer by rule: the oracle reads the story and names the asked person's last room (it binds); the constant model
always names one room (it cannot bind). The probe must tell them apart exactly.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from helpers import load_script

from lm2.data.babilong import build_samples, finetune_prompt, qa1_places


def word_tokenizer(samples):
    """One token per word or punctuation mark of the samples' prompts and answers, plus <eos> and <unk>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pre = pre_tokenizers.Whitespace()
    words = sorted({w for s in samples for text in (finetune_prompt(s), s.target)
                    for w, _ in pre.pre_tokenize_str(text)})
    vocab = {w: i for i, w in enumerate(["<eos>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>",
                                   pad_token="<eos>")


class RuleModel(torch.nn.Module):
    """Logits that put all weight on the room ``answer(words)`` names, where ``words`` is the prompt as words."""

    def __init__(self, tokenizer, answer):
        super().__init__()
        self.vocab, self.answer = tokenizer.get_vocab(), answer
        self.words = {i: w for w, i in self.vocab.items()}

    def forward(self, input_ids):
        logits = torch.zeros(*input_ids.shape, len(self.vocab))
        for b, row in enumerate(input_ids.tolist()):
            logits[b, -1, self.vocab[self.answer([self.words[i] for i in row])]] = 1.0
        return SimpleNamespace(logits=logits)


def oracle(words):
    """The asked person's last room: the story's statements are "<person> <verb> [back] to the <room> ."."""
    asked = words[len(words) - 1 - words[::-1].index("Where") + 2]
    facts = " ".join(words[: len(words) - 1 - words[::-1].index("Question")]).split(" . ")
    return qa1_places([f.strip(" .") + "." for f in facts if f.strip(" .")])[asked][0]


def test_the_probe_tells_a_binding_model_from_a_constant_one():
    script = load_script("probe_binding")
    samples = build_samples("qa1", "0k", 60, split="test", seed=0)
    tokenizer = word_tokenizer(samples)

    binds = RuleModel(tokenizer, oracle)
    answers = [script.first_answer_token(binds, tokenizer, s) for s in samples]
    assert answers == [s.target for s in samples]
    r = script.probe(binds, tokenizer, samples, answers)
    assert r["pairs"] == sum(len(qa1_places(s.facts)) > 1 for s in samples) > 40
    assert r["accuracy"] == r["accuracy_swapped"] == 1.0
    assert r["answer_changed"] == r["targets_differ"] > 0.5  # it changes exactly where the true answers differ

    constant = RuleModel(tokenizer, lambda words: "kitchen")
    answers = [script.first_answer_token(constant, tokenizer, s) for s in samples]
    r = script.probe(constant, tokenizer, samples, answers)
    assert r["answer_changed"] == 0.0
    assert 0 < r["accuracy"] < 0.5


def test_by_distance_counts_each_answer_once_and_the_last_room_is_right_at_distance_zero():
    script = load_script("probe_binding")
    samples = build_samples("qa1", "0k", 80, split="test", seed=0)
    last_room = [s.facts[-1].rstrip(".").split()[-1] for s in samples]
    table, kinds = script.by_distance(samples, last_room)
    assert sum(asked for _, asked in table.values()) == sum(kinds.values()) == len(samples)
    assert kinds["right"] + kinds["last room"] == len(samples)
    assert table[0][0] == table[0][1] > 0  # the last statement is about the person asked: the last room is right
    assert set(table) <= {0, 1, 2, 3, 4}

    table, kinds = script.by_distance(samples, [s.target for s in samples])
    assert kinds["right"] == len(samples) and all(right == asked for right, asked in table.values())


def test_compacted_replaces_each_statement_in_place_and_keeps_the_background():
    script = load_script("probe_binding")
    words = ["went", "moved", "journeyed", "travelled", "back", "to", "the"]
    for sample in build_samples("qa1", "1k", 4, split="test", seed=0):
        short = script.compacted(sample, words)
        assert short.question == sample.question and short.target == sample.target
        assert all(len(f.split()) == 2 for f in short.facts)  # "Mary kitchen."
        context, cursor = short.context, 0
        for full, compact in zip(sample.facts, short.facts):  # putting the statements back gives the original
            at = context.index(compact, cursor)
            context, cursor = context[:at] + full + context[at + len(compact):], at + len(full)
        assert context == sample.context
        assert short.n_tokens < sample.n_tokens
