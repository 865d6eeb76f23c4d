"""Small builders shared by the tests (imported as ``from helpers import ...``; tests/ is on sys.path)."""

from __future__ import annotations

import torch

from lm2 import LM2Config, LM2ForCausalLM


# The paper's memory and the options that change its math (each causal and stream-equivalent like the paper's).
MEMORY_VARIANTS = {
    "paper": {},
    "replace": {"memory_update": "replace"},
    "write_gate": {"memory_write_gate": "token"},
    "read_scale": {"memory_read_scale": 4.0},
    "slot_keys": {"memory_slot_keys": True},
    "top1": {"memory_write_route": "top1"},
    "shift": {"memory_write_shift": True},
    "all": {"memory_update": "replace", "memory_write_gate": "token", "memory_read_scale": 4.0,
            "memory_write": "input", "memory_slot_keys": True, "memory_write_route": "top1",
            "memory_write_shift": True},
}


def tiny_config(**overrides) -> LM2Config:
    fields = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, memory_slots=6, memory_heads=2, memory_layers=2,
                  memory_update_interval=4)
    fields.update(overrides)
    return LM2Config.from_preset("tiny", **fields)


def randomize_memory(model: torch.nn.Module, std: float = 0.3, seed: int = 0) -> None:
    """Give every memory parameter a random non-zero value, so that memory visibly shapes the output.

    At initialisation the read output projection is zero and memory changes nothing: a causality or
    streaming test on a fresh model could not fail.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".memory." in name and "initial_memory" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def memory_model(seed: int = 0, **overrides) -> LM2ForCausalLM:
    torch.manual_seed(seed)
    model = LM2ForCausalLM(tiny_config(**overrides)).eval()
    randomize_memory(model, seed=seed)
    return model


EOS = "<eos>"


def char_tokenizer():
    """One token per printable ASCII character (ids 0-94) plus <eos> (95) and <unk> (96): the tiny models'
    vocabulary of 97, with a decoder that concatenates characters, so text round-trips exactly."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(c): i for i, c in enumerate(range(32, 127))}
    vocab.update({EOS: 95, "<unk>": 96})
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, unk_token="<unk>", pad_token=EOS)
