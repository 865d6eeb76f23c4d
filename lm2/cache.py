"""The streaming state of an LM2 model: per layer the keys and values of the last W tokens and the memory
bank, plus the absolute position of the next token.

With a sliding window the state has a fixed size whatever the context length, so a 128K-token input can be
fed segment by segment with flat time and memory per token. The same object is the KV cache of ``generate()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lm2.memory import MemoryState


@dataclass
class LayerCache:
    keys: torch.Tensor | None = None  # (B, KVH, L, dh), rotary already applied
    values: torch.Tensor | None = None  # (B, KVH, L, dh)
    key_mask: torch.Tensor | None = None  # (B, L) False for padding; None = no padding seen
    memory: MemoryState | None = None
    last_key: torch.Tensor | None = None  # (B, KVH, 1, dh) the last token's own key (attention_key_shift only)
    conv_inputs: torch.Tensor | None = None  # (B, w - 1, C) the last projected q, k, v (attention_conv only)


@dataclass
class LM2Cache:
    """Per-layer window KV and memory state, plus the absolute position offset.

    ``memory_update_interval`` (U) is fixed for the life of the state: update boundaries are absolute positions.
    A forward returns a new state and leaves the one it was given as it was; ``reorder_cache`` and ``detach``
    change this object in place (its holder's own edits).
    """

    num_layers: int
    memory_update_interval: int
    window: int | None = None
    offset: int = 0
    layers: list[LayerCache] = field(default_factory=list)

    def __post_init__(self):
        if not self.layers:
            self.layers = [LayerCache() for _ in range(self.num_layers)]

    # The two methods below are what transformers' generation utilities ask of a cache.
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.offset

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Select batch rows (beam search)."""
        for layer in self.layers:
            if layer.keys is not None:
                layer.keys = layer.keys.index_select(0, beam_idx)
                layer.values = layer.values.index_select(0, beam_idx)
            if layer.key_mask is not None:
                layer.key_mask = layer.key_mask.index_select(0, beam_idx)
            if layer.last_key is not None:
                layer.last_key = layer.last_key.index_select(0, beam_idx)
            if layer.conv_inputs is not None:
                layer.conv_inputs = layer.conv_inputs.index_select(0, beam_idx)
            if layer.memory is not None:
                layer.memory = layer.memory.index_select(beam_idx)

    def detach(self) -> "LM2Cache":
        """Cut the autograd graph (truncated backpropagation through time) without changing any value."""
        for layer in self.layers:
            if layer.keys is not None:
                layer.keys, layer.values = layer.keys.detach(), layer.values.detach()
            if layer.last_key is not None:
                layer.last_key = layer.last_key.detach()
            if layer.conv_inputs is not None:
                layer.conv_inputs = layer.conv_inputs.detach()
            if layer.memory is not None:
                layer.memory = layer.memory.detach()
        return self

    def memory_banks(self) -> dict[int, torch.Tensor]:
        """The current bank of every memory layer, {layer index: (B, N, D)}."""
        return {i: layer.memory.memory for i, layer in enumerate(self.layers) if layer.memory is not None}

    def nbytes(self) -> int:
        """Bytes held by the state's tensors (for checking that streaming memory stays flat)."""
        total = 0
        for layer in self.layers:
            for t in (layer.keys, layer.values, layer.key_mask, layer.last_key, layer.conv_inputs):
                if t is not None:
                    total += t.numel() * t.element_size()
            if layer.memory is not None:
                total += layer.memory.memory.numel() * layer.memory.memory.element_size()
                for t in (layer.memory.previous, layer.memory.history, layer.memory.history_valid):
                    if t is not None:
                        total += t.numel() * t.element_size()
                if layer.memory.pending is not None:
                    p = layer.memory.pending
                    total += sum(t.numel() * t.element_size() for t in (p.weight, p.x_sum, p.e_sum, p.log_keep)
                                 if t is not None)
        return total


def segments(model, input_ids: torch.Tensor, segment_length: int, cache=None, attention_mask=None,
             logits_to_keep: int = 1, bptt_segments: int = 0, **forward_kwargs):
    """The one segment loop: feed ``input_ids`` (B, T) through ``model`` ``segment_length`` tokens at a time,
    carrying the state, and yield ``(start, output)`` for each segment (``output.past_key_values`` is the state
    after it). ``attention_mask`` (B, T) is cut with the input; ``logits_to_keep`` is the model's (0 = every
    position). Any causal LM with a cache works (LM2, RMT, an HF Llama). With a sliding window the cost per token
    and the state's size stay flat however long the input is. Gradients flow through the carried state unless the
    caller runs under ``torch.no_grad()`` (evaluation does); ``bptt_segments`` > 0 cuts them every that many
    segments (truncated backpropagation through time, as training asks for)."""
    if segment_length < 1:
        raise ValueError(f"segment_length={segment_length} is invalid: it must be a positive integer.")
    for k, start in enumerate(range(0, input_ids.shape[1], segment_length)):
        if bptt_segments and k and k % bptt_segments == 0:
            cache.detach()  # no gradient reaches earlier segments through the state
        end = start + segment_length
        mask = None if attention_mask is None else attention_mask[:, start:end]
        # past_key_values: the name every causal LM takes (LM2 and RMT accept it as an alias of their state)
        out = model(input_ids[:, start:end], attention_mask=mask, past_key_values=cache, use_cache=True,
                    logits_to_keep=logits_to_keep, **forward_kwargs)
        cache = out.past_key_values
        yield start, out


@torch.no_grad()
def stream(model, input_ids: torch.Tensor, segment_length: int, cache=None, on_segment=None, **forward_kwargs):
    """Feed ``input_ids`` (B, T) through ``model`` in segments (``segments``) and return the final state and the
    logits of the last position (B, V). ``on_segment(cache, logits, tokens)`` is called after every segment with
    the number of tokens it fed (progress bars, statistics)."""
    last = None
    for start, out in segments(model, input_ids, segment_length, cache, **forward_kwargs):
        cache, last = out.past_key_values, out.logits[:, -1]
        if on_segment is not None:
            on_segment(cache, last, min(segment_length, input_ids.shape[1] - start))
    return cache, last
