"""Perplexity: a uniform model's is the vocabulary size; streaming gives the losses of one call; the curve."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lm2.eval.common import LoadedModel
from lm2.eval.perplexity import evaluate_perplexity, format_result, token_windows, window_nll

TEXTS = ["Mary went to the kitchen. " * 40, "The night came slowly over the hills and the long day ended. " * 25]


def loaded(model, tokenizer):
    return LoadedModel(model, tokenizer, Path("rigged"), "rigged")


@pytest.mark.parametrize("streaming", [True, False])
def test_a_uniform_model_has_the_vocabulary_size_as_perplexity(streaming, gpt2, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers import memory_model

    if streaming:
        model = memory_model(vocab_size=len(gpt2), sliding_window=8)
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(gpt2), hidden_size=16, intermediate_size=32,
                                             num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1))
    with torch.no_grad():
        model.lm_head.weight.zero_()  # zero logits: every token has probability 1/V
    result = evaluate_perplexity(loaded(model.eval(), gpt2), TEXTS, seq_len=100, max_tokens=None,
                                 segment_length=17, batch_size=3, out_dir=tmp_path, progress=False)
    assert result["perplexity"] == pytest.approx(len(gpt2), rel=1e-6)
    assert result["loss"] == pytest.approx(math.log(len(gpt2)), rel=1e-6)
    assert sum(result["loss_by_position"]["tokens"]) == result["tokens"]
    assert (tmp_path / "loss_by_position.png").stat().st_size > 0 and (tmp_path / "perplexity.json").exists()
    assert "perplexity" in format_result(result)


def test_streaming_losses_equal_one_call(gpt2):
    from helpers import memory_model

    model = memory_model(memory_update_interval=5, sliding_window=6)
    ids = torch.randint(0, 97, (2, 41))
    with torch.no_grad():
        logits = model(ids).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    torch.testing.assert_close(window_nll(model, ids, segment_length=9), expected, atol=1e-5, rtol=0)


def test_windows_and_token_budget(gpt2):
    windows = list(token_windows(TEXTS, gpt2, seq_len=64, max_tokens=150))
    assert [len(w) for w in windows] == [64, 64, 22]
    everything = list(token_windows(TEXTS, gpt2, seq_len=10_000, max_tokens=None))
    assert len(everything) == 2  # one window per document: windows never span documents


def test_a_window_longer_than_a_non_streaming_model_takes_is_an_error(gpt2):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(gpt2), hidden_size=16, intermediate_size=32,
                                         num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1,
                                         max_position_embeddings=64))
    with pytest.raises(ValueError, match="cannot stream"):
        evaluate_perplexity(loaded(llama, gpt2), TEXTS, seq_len=100, progress=False)
