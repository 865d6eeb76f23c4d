"""Facts about a loaded model, whatever its kind (LM2 with or without memory, RMT, any Hugging Face causal LM):
its kind, whether it streams, the padding it tolerates, the longest input it takes, its end-of-sequence tokens.

LM2 and RMT models *stream*: they take any input length segment by segment with a carried state. Every other
model gets its input in one call and is limited to its ``max_position_embeddings``; asking it for more is a clear
error (``check_fits``), never a silent truncation. Generation, evaluation and training all ask here.
"""

from __future__ import annotations

from typing import Any

from lm2.modeling_lm2 import LM2ForCausalLM
from lm2.rmt import RMTForCausalLM


def model_kind(model: Any) -> str:
    """"lm2" (memory blocks), "vanilla" (LM2 code, no memory), "rmt", "streaming" (another model with the
    streaming interface), or "hf" (any other causal LM)."""
    if isinstance(model, RMTForCausalLM):
        return "rmt"
    if isinstance(model, LM2ForCausalLM):
        return "lm2" if model.config.has_memory else "vanilla"
    return "streaming" if is_streaming(model) else "hf"


def is_streaming(model: Any) -> bool:
    """Whether the model has LM2's streaming interface (LM2, vanilla, RMT): ``new_cache()``, and a forward
    that takes any input length plus the state returned by the previous call (``cache=``)."""
    return callable(getattr(model, "new_cache", None))


def padding_multiple(model: Any) -> int:
    """Left padding by a multiple of this leaves a model's outputs for the real tokens unchanged.

    LM2 writes memory at absolute multiples of U and RMT closes a segment at multiples of S; padding by a multiple
    keeps every real token in the same chunk or segment (padding-only chunks write nothing, padding-only RMT
    segments keep the memory, and RoPE and the window only see relative positions). A model without memory, or
    a non-streaming one (generate() gives each row its own positions), takes any padding: 1.
    """
    kind = model_kind(model)
    if kind == "lm2":
        return int(model.config.memory_update_interval)
    if kind == "rmt":
        return int(model.config.rmt_segment_length)
    return 1


def max_positions(model: Any) -> int | None:
    """The longest input a non-streaming model takes in one call (None: a streaming model, no limit)."""
    if is_streaming(model):
        return None
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_fits(model: Any, n_tokens: int, what: str) -> None:
    """ValueError when a non-streaming model cannot take ``n_tokens`` positions in one call."""
    limit = max_positions(model)
    if limit is not None and n_tokens > limit:
        raise ValueError(
            f"{what} needs {n_tokens} positions, but this {type(model).__name__} takes at most {limit} "
            f"(max_position_embeddings) and cannot stream longer inputs; use shorter inputs, or an LM2/RMT model "
            "that streams"
        )


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a generated answer: the tokenizer's eos and the generation config's."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, (list, tuple)):
        ids.update(int(i) for i in extra)
    return ids
