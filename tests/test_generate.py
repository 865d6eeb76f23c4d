"""Generation (lm2/generate.py): sampling, a prompt streamed in segments gives the same tokens as one call,
agreement with model.generate(), stopping at eos, chat templates, and streaming text."""

from __future__ import annotations

import pytest
import torch

from helpers import char_tokenizer, memory_model

from lm2.generate import detokenize_stream, encode_prompt, generate_stream, generate_tokens, sample


def test_sample_greedy_nucleus_and_seed():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log().expand(4000, -1)
    assert sample(logits, temperature=0.0).tolist() == [0] * 4000
    nucleus = sample(logits, 1.0, top_p=0.7, generator=torch.Generator().manual_seed(0))
    assert set(nucleus.tolist()) == {0, 1}  # 0.5 + 0.3 reaches 0.7: tokens 2 and 3 are outside the nucleus
    full = sample(logits, 1.0, generator=torch.Generator().manual_seed(0))
    assert set(full.tolist()) == {0, 1, 2, 3}
    assert abs((full == 0).float().mean().item() - 0.5) < 0.05
    again = sample(logits, 1.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(full, again)
    assert sample(logits[:1], 1.0, top_p=1e-6).item() == 0  # a tiny nucleus keeps only the most likely token
    for bad in (dict(temperature=-1.0), dict(temperature=1.0, top_p=0.0), dict(temperature=1.0, top_p=1.5)):
        with pytest.raises(ValueError):
            sample(logits, **bad)


@pytest.mark.parametrize("window", [None, 4])  # 4: the prompt is far longer than the attention window
@pytest.mark.parametrize("interval", [1, 3])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_prompt_streamed_in_segments_gives_the_same_tokens(window, interval, temperature):
    model = memory_model(seed=1, sliding_window=window)
    prompt = torch.randint(0, 97, (29,), generator=torch.Generator().manual_seed(2))
    kwargs = dict(max_new_tokens=10, temperature=temperature, top_p=0.9, memory_update_interval=interval, seed=5)
    whole = list(generate_tokens(model, prompt, segment_length=1000, **kwargs))
    for segment_length in (1, 5):
        assert list(generate_tokens(model, prompt, segment_length=segment_length, **kwargs)) == whole
    assert len(whole) == 10


@pytest.mark.parametrize("interval", [1, 4])
def test_generate_tokens_equals_model_generate_greedy(interval):
    model = memory_model(seed=3, sliding_window=6)
    prompt = torch.randint(0, 97, (1, 17), generator=torch.Generator().manual_seed(4))
    expected = model.generate(prompt, max_new_tokens=12, do_sample=False, memory_update_interval=interval,
                              pad_token_id=0)[0, 17:].tolist()
    assert list(generate_tokens(model, prompt, 12, memory_update_interval=interval, segment_length=5)) == expected


def test_generation_stops_after_eos():
    model = memory_model(seed=3)
    prompt = list(range(10, 20))
    free = list(generate_tokens(model, prompt, 12))
    stop = free[3]
    stopped = list(generate_tokens(model, prompt, 12, eos_token_ids={stop}))
    assert stopped == free[: free.index(stop) + 1]
    assert list(generate_tokens(model, prompt, 0)) == []


def test_generate_stream_equals_model_generate_text():
    model, tok = memory_model(seed=4), char_tokenizer()
    prompt = "Mary went to the garden. Where is Mary?"
    ids = torch.tensor([tok(prompt)["input_ids"]])
    out = model.generate(ids, max_new_tokens=15, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    expected = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    pieces = list(generate_stream(model, tok, prompt, max_new_tokens=15, segment_length=7))
    assert "".join(pieces) == expected
    assert len(pieces) > 1  # text arrives piece by piece, not at the end


def test_chat_template_is_used_when_the_tokenizer_has_one():
    tok = char_tokenizer()
    assert encode_prompt(tok, "hi") == tok("hi")["input_ids"]
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}: {{ m['content'] }}]{% endfor %}"
                         "{% if add_generation_prompt %}[assistant: {% endif %}")
    assert encode_prompt(tok, "hi") == tok("[user: hi][assistant: ")["input_ids"]
    assert encode_prompt(tok, "hi", chat_template=False) == tok("hi")["input_ids"]


def test_streamed_text_never_splits_a_utf8_character():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    # Byte-level BPE without merges: every byte is a token, so "é" and "✓" are split over several tokens.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend)
    text = "héllo wörld ✓ done"
    ids = tok(text)["input_ids"]
    assert len(ids) > len(text)
    pieces = list(detokenize_stream(tok, ids))
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
