"""Rigged models for the evaluation tests: each answers in a known way, so a score has one right value."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn


@pytest.fixture(autouse=True)
def one_thread(request):
    """The models here are tiny: one thread runs them several times faster than two on the 2-core CI machines
    (waking a second OpenMP thread for a 32-wide matrix product costs more than the product). Slow tests run
    real models and keep every thread."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def gpt2():
    from lm2.data.tokenizers import gpt2_tokenizer

    return gpt2_tokenizer()


class ScriptedLM(nn.Module):
    """A streaming-interface LM that reads each row's whole input and, once it has read a full prompt (text
    ending in ``marker``), emits the tokens of ``answer_of(prompt text)`` and then eos: its greedy answer is
    exactly that text. Before the prompt ends it predicts eos (nobody decodes there)."""

    def __init__(self, tokenizer, answer_of, marker: str = "Answer:"):
        super().__init__()
        self.tokenizer, self.answer_of, self.marker = tokenizer, answer_of, marker
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device
        self.config = SimpleNamespace(max_position_embeddings=None)

    def new_cache(self):
        return SimpleNamespace(tokens=None, prompt_len=None, offset=0)

    def forward(self, input_ids, attention_mask=None, cache=None, past_key_values=None, use_cache=None,
                logits_to_keep=0, **kwargs):
        cache = cache if cache is not None else past_key_values  # LM2's and RMT's alias, as they take it
        state = cache if cache is not None else self.new_cache()
        b, t = input_ids.shape
        if state.tokens is None:
            state.tokens, state.prompt_len = [[] for _ in range(b)], [None] * b
        mask = attention_mask[:, -t:] if attention_mask is not None else torch.ones_like(input_ids)
        vocab = len(self.tokenizer)
        logits = torch.zeros(b, 1, vocab)
        for row in range(b):
            state.tokens[row] += [tok for tok, m in zip(input_ids[row].tolist(), mask[row].tolist()) if m]
            tokens = state.tokens[row]
            if state.prompt_len[row] is None and self.tokenizer.decode(tokens).rstrip().endswith(self.marker):
                state.prompt_len[row] = len(tokens)
            target = self.tokenizer.eos_token_id
            if state.prompt_len[row] is not None:
                prompt = self.tokenizer.decode(tokens[: state.prompt_len[row]])
                answer = self.tokenizer(" " + self.answer_of(prompt), add_special_tokens=False)["input_ids"]
                answer = answer + [self.tokenizer.eos_token_id]
                done = len(tokens) - state.prompt_len[row]
                target = answer[min(done, len(answer) - 1)]
            logits[row, 0, target] = 1.0
        state.offset += t
        if not logits_to_keep:
            logits = logits.expand(b, t, vocab)
        return SimpleNamespace(logits=logits, past_key_values=state)


class LetterLM(nn.Module):
    """A non-streaming LM whose next-token distribution always prefers ``token`` (and is otherwise uniform)."""

    def __init__(self, vocab_size: int, token: int | None = None, max_positions: int = 4096):
        super().__init__()
        self.vocab_size, self.token = vocab_size, token
        self.anchor = nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(max_position_embeddings=max_positions)

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0, **kwargs):
        b, t = input_ids.shape
        keep = logits_to_keep or t
        logits = torch.zeros(b, keep, self.vocab_size)
        if self.token is not None:
            logits[..., self.token] = 5.0
        return SimpleNamespace(logits=logits)

    @property
    def device(self) -> torch.device:  # lm-evaluation-harness's HFLM reads it, and calls tie_weights
        return self.anchor.device

    def tie_weights(self) -> None:
        pass


@pytest.fixture(scope="session")
def scripted_lm():
    return ScriptedLM


@pytest.fixture(scope="session")
def letter_lm():
    return LetterLM
