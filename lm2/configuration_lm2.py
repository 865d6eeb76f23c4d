"""LM2Config: a Llama config plus the memory module's settings, its presets and its validation.

The config subclasses transformers' ``LlamaConfig`` so that every Llama field keeps its name and meaning and a
Llama ``config.json`` loads as an LM2 config with no memory (``memory_layers=0``). The memory fields are
described in docs/design.md; the paper's model is the ``lm2-1.7b`` preset.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from transformers import LlamaConfig

MEMORY_WRITE_MODES = ("read", "input", "both")
MEMORY_UPDATES = ("gated", "replace")
MEMORY_WRITE_GATES = ("none", "token")
MEMORY_WRITE_ROUTES = ("soft", "top1")
MEMORY_WRITE_THRESHOLD_GRADIENTS = ("cut", "straight_through")
MEMORY_WRITE_ADDRESSES = ("self", "previous", "query", "lookback")


class LM2Config(LlamaConfig):
    r"""Configuration of an LM2 model: every ``LlamaConfig`` field, plus

    memory_slots (N): number of slots in each memory bank.
    memory_heads: heads of the token -> memory cross-attention (``hidden_size`` must be divisible by it).
    memory_layers: an int k puts memory in the first k decoder blocks (the paper's ablation uses 1, 6, 12, 16);
        a list gives explicit block indices; 0 or [] is a plain Llama.
    memory_update_interval (U): tokens per memory write. U = 1 is the paper's per-token test-time update.
    memory_write: what a write stores: "read" (eq. 6: tanh of the pooled memory read), "input" (tanh of a
        projection of the pooled token states, an LSTM-style candidate) or "both" (tanh of their sum).
    memory_forget_bias: initial bias of the forget gate; a positive value makes a fresh memory keep its content.
    memory_update: "gated" (eq. 6: M <- (1 - s (1 - g_f)) M + s g_in c) or "replace" (M <- M + s g_in (c - M): a
        bounded, replace-not-accumulate update without a forget gate).
    memory_write_gate: "none" (the paper: every token writes where it reads) or "token" (a learned write strength
        per token scales its read weights in the write, so tokens can decline to write).
    memory_write_threshold: 0 (off) or a strength in (0, 1) below which a token does not write at all (needs
        ``memory_write_gate: token``). A near-zero strength still moves a slot a little; written thousands of times
        over long background text, such writes wear every slot toward the same content. The cut is hard in the
        forward pass; tokens above it keep their strength and its gradient.
    memory_write_threshold_gradient: "cut" (a token below the threshold gets no gradient through its write
        strength; it moves only as the gate's weights move for the tokens above) or "straight_through" (the backward
        pass treats the cut as the identity: a token below the threshold gets the gradient it would get if its
        strength were kept, up or down). The forward pass is the same.
    memory_write_route: "soft" (the paper: a token writes every slot in proportion to its read weights) or "top1" (a
        token writes only the slot it reads most, with straight-through gradients), so that different facts land
        in different slots instead of being averaged into every slot.
    memory_write_address: "self" (the paper: a token writes where it reads) or "previous" (token i is written where
        token i - 1 reads, so a value is stored at the address its key reads from) or "query" (a separate learned
        write query, x_hat_i W_A, addresses the write: a token can be written where another token of its context,
        e.g. a sentence's subject a few tokens back, will read) or "lookback" (token i is written where one of the
        ``memory_write_lookback`` tokens before it reads, chosen by a learned softmax over them from how key-like
        each is and how far back: "previous" when it always picks the token before).
    memory_write_lookback (L): how many tokens back a "lookback" write address may reach (default 8).
    memory_write_lookback_init: the starting cost of each token further back in the "lookback" choice (its
        preferences start at b_l = -init * (l - 1)); default 1.0 (63% of the choice on the token before); larger
        starts closer to "previous" (3.0: 95%), 0 starts uniform.
    memory_write_lookback_learn_bias: whether the "lookback" distance preference is learned (default true); false
        keeps it at its start (a buffer), so only how key-like a token is (w_s) can move the choice, and what is
        learned on adjacent pairs is a kind of token to write under rather than a distance.
    memory_write_shift: the write pools x_hat_i + W_s x_hat_(i-1) instead of x_hat_i (a token shift): each token
        is written together with the one before it, e.g. a value with its key.
    memory_write_after_attention: the write (its pooled states, gates, strength and, unless the address is
        "self", its address) is taken from RMSNorm(x + SelfAttn(x_hat)) (the block's post-attention norm) instead
        of x_hat, so a token is written together with what its attention gathered (a value with its key a few
        tokens back). The read still uses x_hat (eq. 1).
    memory_slot_keys: add a learned address per slot to the slot keys (K = M W_K + A), which writes do not move.
    memory_read_scale: None (the paper's Q K^T / sqrt(d_head)) or a float: the read scores are cosine similarities
        times a learned per-head scale initialised to this value (QK-norm), for sharp reads from the start.
    attention_key_shift: smeared keys (off = Llama's attention): each self-attention key is a learned per-head mix
        of the token's key and the previous token's, k'_j = a k_j + (1 - a) k_(j-1), a = sigmoid(learned, 0 at init).
    attention_conv: 0 (off = Llama's attention) or a width w >= 2: a causal depthwise convolution over the projected
        queries, keys and values (Primer's multi-dconv-head attention), out_j = sum_(i<w) c_i * in_(j-i) per channel,
        identity at initialisation; a key then carries the w - 1 tokens before it.
    sliding_window (W): self-attention sees the last W tokens (itself included); None = full causal attention.
    """

    model_type = "lm2"

    memory_slots: int = 16
    memory_heads: int = 1
    memory_layers: Any = 0
    memory_update_interval: int = 64
    memory_write: str = "read"
    memory_forget_bias: float = 1.0
    memory_update: str = "gated"
    memory_write_gate: str = "none"
    memory_write_threshold: float = 0.0
    memory_write_threshold_gradient: str = "cut"
    memory_write_route: str = "soft"
    memory_write_address: str = "self"
    memory_write_lookback: int = 8
    memory_write_lookback_init: float = 1.0
    memory_write_lookback_learn_bias: bool = True
    memory_read_scale: Any = None
    memory_slot_keys: bool = False
    memory_write_shift: bool = False
    memory_write_after_attention: bool = False
    attention_key_shift: bool = False
    attention_conv: int = 0
    sliding_window: Any = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.validate_lm2()

    # ------------------------------------------------------------------ validation
    def validate_lm2(self) -> None:
        """Raise ``ValueError`` naming the field, the value and what is allowed."""

        def positive_int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LM2Config.{name}={value!r} is invalid: it must be a positive integer.")

        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads", "num_key_value_heads", "memory_slots", "memory_heads",
                     "memory_update_interval", "memory_write_lookback"):
            positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"LM2Config.num_attention_heads={self.num_attention_heads} is invalid: it must divide "
                f"hidden_size={self.hidden_size}."
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"LM2Config.num_key_value_heads={self.num_key_value_heads} is invalid: it must divide "
                f"num_attention_heads={self.num_attention_heads} (grouped-query attention)."
            )
        if self.hidden_size % self.memory_heads:
            raise ValueError(
                f"LM2Config.memory_heads={self.memory_heads} is invalid: it must divide "
                f"hidden_size={self.hidden_size}."
            )
        if self.memory_write not in MEMORY_WRITE_MODES:
            raise ValueError(
                f"LM2Config.memory_write={self.memory_write!r} is invalid: choose one of {MEMORY_WRITE_MODES}."
            )
        for name, choices in (("memory_update", MEMORY_UPDATES), ("memory_write_gate", MEMORY_WRITE_GATES),
                              ("memory_write_route", MEMORY_WRITE_ROUTES),
                              ("memory_write_threshold_gradient", MEMORY_WRITE_THRESHOLD_GRADIENTS),
                              ("memory_write_address", MEMORY_WRITE_ADDRESSES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"LM2Config.{name}={getattr(self, name)!r} is invalid: choose one of {choices}.")
        init = self.memory_write_lookback_init
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init) or init < 0:
            raise ValueError(f"LM2Config.memory_write_lookback_init={init!r} is invalid: it must be a number >= 0.")
        cut = self.memory_write_threshold
        if isinstance(cut, bool) or not isinstance(cut, (int, float)) or not 0 <= cut < 1:
            raise ValueError(f"LM2Config.memory_write_threshold={cut!r} is invalid: use 0 (off) or a write strength "
                             "in (0, 1) below which a token does not write.")
        if cut and self.memory_write_gate != "token":
            raise ValueError(f"LM2Config.memory_write_threshold={cut!r} needs memory_write_gate='token' (it cuts the "
                             f"learned per-token write strength); this config has {self.memory_write_gate!r}.")
        for name in ("memory_slot_keys", "memory_write_shift", "memory_write_after_attention",
                     "attention_key_shift", "memory_write_lookback_learn_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LM2Config.{name}={getattr(self, name)!r} is invalid: true or false.")
        conv = self.attention_conv
        if isinstance(conv, bool) or not isinstance(conv, int) or conv < 0 or conv == 1:
            raise ValueError(f"LM2Config.attention_conv={conv!r} is invalid: use 0 (off) or a convolution width of "
                             "at least 2 (tokens each query, key and value mixes, itself included).")
        scale = self.memory_read_scale
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0):
            raise ValueError(f"LM2Config.memory_read_scale={scale!r} is invalid: use null (the paper's 1/sqrt(d_head) "
                             "dot product) or a positive number (cosine scores times a learned scale).")
        if self.sliding_window is not None:
            positive_int("sliding_window", self.sliding_window)
        if self.hidden_act != "silu":
            raise ValueError(f"LM2Config.hidden_act={self.hidden_act!r} is invalid: LM2 uses SwiGLU ('silu').")
        self.memory_layer_indices()  # validates memory_layers

    def memory_layer_indices(self) -> list[int]:
        """The decoder blocks that carry memory, as sorted indices."""
        layers, n = self.memory_layers, self.num_hidden_layers
        if layers is None:
            return []
        if isinstance(layers, int) and not isinstance(layers, bool):
            if not 0 <= layers <= n:
                raise ValueError(
                    f"LM2Config.memory_layers={layers!r} is invalid: an int k puts memory in the first k blocks, "
                    f"so it must be between 0 and num_hidden_layers={n}."
                )
            return list(range(layers))
        if isinstance(layers, (list, tuple)):
            bad = [i for i in layers if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n]
            if bad or len(set(layers)) != len(layers):
                raise ValueError(
                    f"LM2Config.memory_layers={list(layers)!r} is invalid: a list must hold distinct block "
                    f"indices in [0, {n - 1}]."
                )
            return sorted(layers)
        raise ValueError(
            f"LM2Config.memory_layers={layers!r} is invalid: give an int (the first k blocks) or a list of "
            "block indices."
        )

    @property
    def has_memory(self) -> bool:
        return bool(self.memory_layer_indices())

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "LM2Config":
        """Build a named preset (see ``PRESETS``), with any field overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown LM2 preset {name!r}: choose one of {sorted(PRESETS)}.")
        fields = copy.deepcopy(PRESETS[name])
        fields.update(overrides)
        return cls(**fields)


# Named presets. `tiny` is for CPU tests; `small` (~6M parameters with an 8k vocabulary) trains at a few
# thousand tokens/s on a 2-core CPU; `lm2-1.7b` is the paper's model: the Llama-3.2-1B backbone plus 2048
# slots in all 16 blocks (~0.5B memory parameters).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=512, hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=True,
        memory_slots=16, memory_heads=4, memory_layers=2, memory_update_interval=16, sliding_window=None,
        bos_token_id=None, eos_token_id=None,
    ),
    "small": dict(
        vocab_size=8192, hidden_size=256, intermediate_size=688, num_hidden_layers=6, num_attention_heads=8,
        num_key_value_heads=4, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=True,
        memory_slots=64, memory_heads=8, memory_layers=6, memory_update_interval=64, sliding_window=None,
        bos_token_id=None, eos_token_id=None,
    ),
    "40m": dict(
        vocab_size=8192, hidden_size=512, intermediate_size=1376, num_hidden_layers=10, num_attention_heads=8,
        num_key_value_heads=4, max_position_embeddings=131072, rms_norm_eps=1e-6, tie_word_embeddings=True,
        memory_slots=128, memory_heads=8, memory_layers=10, memory_update_interval=128, sliding_window=None,
        bos_token_id=None, eos_token_id=None,
    ),
    "lm2-1.7b": dict(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, max_position_embeddings=131072, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001,
        rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=8192),
        memory_slots=2048, memory_heads=16, memory_layers=16, memory_update_interval=128, sliding_window=None,
    ),
}
