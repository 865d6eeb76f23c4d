"""LM2: a Llama decoder with a gated memory bank in some or all of its blocks (arXiv 2502.06049).

Reads top to bottom: the math as functions (rotary, masks), then RMSNorm, rotary embedding, attention, MLP,
decoder block (self-attention path + memory path, paper Fig. 1), the model and the LM head. Parameter names
equal transformers' Llama, so a Llama checkpoint loads with no key map; each memory block's parameters sit
under ``model.layers.<i>.memory.`` (see ``lm2/memory.py`` for the memory math). There is no training code here.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from lm2.cache import LayerCache, LM2Cache
from lm2.configuration_lm2 import LM2Config
from lm2.memory import LM2Memory, identity_memory, lookback_start

# ----------------------------------------------------------------------------- math


def rope_frequencies(config: LM2Config) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (head_dim / 2,) and the attention scaling of the config's RoPE variant."""
    params = config.rope_parameters
    if params.get("rope_type", "default") == "default":
        dim = config.head_dim
        inv_freq = 1.0 / (params["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
        return inv_freq, 1.0
    # Scaled variants (llama3, yarn, ...) are defined by transformers; reuse them so checkpoints agree.
    return ROPE_INIT_FUNCTIONS[params["rope_type"]](config, None)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, H, T, dh); cos and sin (T, dh)."""
    return x * cos + rotate_half(x) * sin


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, labels (B, T) aligned with the inputs (-100 = ignored). The labels are
    shifted, not the logits: slicing the (B, T, V) logits would copy them. Logits of only the last K positions
    (``logits_to_keep=K``) are scored against the last K targets."""
    shifted = F.pad(labels[:, 1:], (0, 1), value=-100)
    if logits.shape[1] != shifted.shape[1]:
        if logits.shape[1] > shifted.shape[1]:
            raise ValueError(f"{logits.shape[1]} positions of logits but labels for only {shifted.shape[1]}")
        shifted = shifted[:, -logits.shape[1] :]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), shifted.reshape(-1), ignore_index=-100)


def window_mask(
    num_queries: int, num_past: int, window: int | None, key_valid: torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean mask (B or 1, 1, T, L + T): query i (absolute position L + i relative to the first cached key)
    sees key j when j <= L + i and j > L + i - W. Padding keys are hidden, but every query sees itself so that
    a padding row never has an empty softmax. Returns None when plain causal attention (is_causal) suffices.
    """
    if window is None and key_valid is None and num_past == 0:
        return None
    q_pos = torch.arange(num_queries, device=device)[:, None] + num_past  # (T, 1)
    k_pos = torch.arange(num_past + num_queries, device=device)[None, :]  # (1, L + T)
    allowed = k_pos <= q_pos
    if window is not None:
        allowed = allowed & (k_pos > q_pos - window)
    allowed = allowed[None, None]  # (1, 1, T, L + T)
    if key_valid is not None:
        allowed = allowed & (key_valid[:, None, None, :] | (k_pos == q_pos)[None, None])
    return allowed


# ----------------------------------------------------------------------------- modules


def _lm2_config_from(llama_config, memory_fields: dict) -> LM2Config:
    """An LM2Config with a Llama config's fields and ``memory_fields`` over them."""
    fields = llama_config.to_dict()
    for key in ("model_type", "architectures", "transformers_version", "auto_map"):
        fields.pop(key, None)
    return LM2Config(**{**fields, **memory_fields})


class LM2RMSNorm(nn.Module):
    """RMSNorm, computed in fp32 as Llama does."""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * x.to(dtype)


class LM2Rotary(nn.Module):
    """Rotary position embedding: cos and sin for absolute positions (any offset, for streaming)."""

    def __init__(self, config: LM2Config):
        super().__init__()
        self.config = config
        inv_freq, self.attention_scaling = rope_frequencies(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @torch.no_grad()
    def forward(self, start: int, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(start, start + length, device=self.inv_freq.device, dtype=torch.float)
        freqs = torch.outer(positions, self.inv_freq.float())  # (T, dh/2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.attention_scaling).to(dtype), (emb.sin() * self.attention_scaling).to(dtype)


class LM2Attention(nn.Module):
    """Grouped-query causal self-attention over the last W tokens, through scaled_dot_product_attention."""

    def __init__(self, config: LM2Config):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.window = config.sliding_window
        bias = config.attention_bias
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=bias)
        if config.attention_key_shift:
            # smeared keys (Olsson et al. 2022): k'_j = a k_j + (1 - a) k_(j-1), a = sigmoid(key_shift) per kv head;
            # a key that also says which token came before it makes "attend to the token after the last X"
            # (induction, and binding a value to its key) one attention step instead of two
            self.key_shift = nn.Parameter(torch.zeros(self.num_kv_heads))
        if config.attention_conv:
            # multi-dconv-head attention (Primer, So et al. 2021): a causal depthwise convolution of width w over the
            # projected queries, keys and values, so a key (or query) can carry the tokens just before it ("the room
            # that follows Mary" becomes one attention step). Row i weighs token j - i; identity at initialisation.
            channels = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
            self.qkv_conv = nn.Parameter(torch.zeros(config.attention_conv, channels))

    def forward(self, x: torch.Tensor, cos, sin, cache: LayerCache,
                key_valid: torch.Tensor | None) -> tuple[torch.Tensor, LayerCache]:
        """The output (B, T, D) and the layer's new state; ``cache`` itself is left as it was."""
        b, t, _ = x.shape
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        carried = {}  # the new last_key and conv_inputs, when this attention has them
        if hasattr(self, "qkv_conv"):
            qkv, carried["conv_inputs"] = self.convolve_qkv(torch.cat([q, k, v], dim=-1), cache.conv_inputs, key_valid)
            q, k, v = qkv.split([q.shape[-1], k.shape[-1], v.shape[-1]], dim=-1)
        q = q.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, dh)
        k = k.view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)  # (B, KVH, T, dh)
        v = v.view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if hasattr(self, "key_shift"):
            k, carried["last_key"] = self.smear_keys(k, cache.last_key, key_valid)

        num_past = 0 if cache.keys is None else cache.keys.shape[2]
        if num_past:
            k, v = torch.cat([cache.keys, k], dim=2), torch.cat([cache.values, v], dim=2)
        if key_valid is not None or cache.key_mask is not None:
            past_valid = cache.key_mask if cache.key_mask is not None else k.new_ones(b, num_past, dtype=torch.bool)
            new_valid = key_valid if key_valid is not None else k.new_ones(b, t, dtype=torch.bool)
            key_valid = torch.cat([past_valid, new_valid], dim=1)
        mask = window_mask(t, num_past, self.window, key_valid, x.device)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None and t > 1,
            enable_gqa=self.num_kv_heads != self.num_heads,
        )  # (B, H, T, dh)

        # Keep what the next call needs: the last W - 1 keys with a window (flat memory), all of them without.
        drop = 0 if self.window is None else max(0, k.shape[2] - (self.window - 1))
        state = replace(cache, keys=k[:, :, drop:], values=v[:, :, drop:],
                        key_mask=None if key_valid is None else key_valid[:, drop:], **carried)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1)), state

    def convolve_qkv(self, qkv: torch.Tensor, past: torch.Tensor | None,
                     key_valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """out_j = sum_i w_i * in_(j-i) per channel over (B, T, C) projections, zeros before a sequence start and
        for padding. ``past`` (None at the start) is the last w - 1 inputs of the previous call and the new one is
        returned with the output, so streaming in pieces gives one call's output."""
        b, t, c = qkv.shape
        width = self.qkv_conv.shape[0]
        if key_valid is not None:
            qkv = qkv * key_valid[:, :, None].to(qkv.dtype)
        past = qkv.new_zeros(b, width - 1, c) if past is None else past
        full = torch.cat([past, qkv], dim=1)  # (B, w - 1 + T, C)
        out = qkv * self.qkv_conv[0]
        for i in range(1, width):
            out = out + full[:, width - 1 - i : width - 1 - i + t] * self.qkv_conv[i]
        return out, full[:, full.shape[1] - (width - 1):]

    def smear_keys(self, k: torch.Tensor, first: torch.Tensor | None,
                   key_valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix each key with the previous token's own key (zeros at a sequence start and after padding). ``first``
        (None at the start) is the previous call's last own key and this call's is returned with the keys, so
        streaming in pieces gives the keys of one call."""
        b, kvh, t, dh = k.shape
        first = k.new_zeros(b, kvh, 1, dh) if first is None else first
        before = torch.cat([first, k[:, :, :-1]], dim=2)  # (B, KVH, T, dh)
        if key_valid is not None:
            prev_valid = torch.cat([key_valid.new_ones(b, 1), key_valid[:, :-1]], dim=1)
            before = before * prev_valid[:, None, :, None].to(k.dtype)
        last = k[:, :, -1:]
        last = last if key_valid is None else last * key_valid[:, None, -1:, None].to(k.dtype)
        a = torch.sigmoid(self.key_shift).view(1, kvh, 1, 1)
        return a * k + (1 - a) * before, last


class LM2MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: LM2Config):
        super().__init__()
        bias = config.mlp_bias
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LM2DecoderLayer(nn.Module):
    """One block (paper Fig. 1). The Transformer path is Llama's, unchanged; memory is a second path:

        x_hat = RMSNorm(x)
        x = x + SelfAttn(x_hat) + g_out * E_mem(x_hat, M)      eq. (1)-(3)
        x = x + MLP(RMSNorm(x))
    and every U tokens M is rewritten by the gates (eq. 4-6), from x_hat or, with
    ``memory_write_after_attention``, from RMSNorm(x + SelfAttn(x_hat)). The block returns its new state (window
    keys and values, memory) and never changes the one it is given, so wrappers may copy it (FSDP hooks its tensors).
    """

    def __init__(self, config: LM2Config, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.input_layernorm = LM2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LM2Attention(config)
        self.post_attention_layernorm = LM2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LM2MLP(config)
        self.memory = LM2Memory(config) if layer_idx in config.memory_layer_indices() else None
        self.write_after_attention = config.memory_write_after_attention

    def forward(self, x, cos, sin, cache: LayerCache, start: int, memory_update_interval: int, key_valid,
                return_weights=False) -> tuple[torch.Tensor, LayerCache, torch.Tensor | None]:
        """The output (B, T, D), the layer's new state and, if asked, the memory read weights (B, T, N)."""
        x_hat = self.input_layernorm(x)
        attended, cache = self.self_attn(x_hat, cos, sin, cache, key_valid)
        out = x + attended
        weights = None
        if self.memory is not None:
            memory = cache.memory if cache.memory is not None else self.memory.initial_state(x.shape[0])
            # memory_write_after_attention: the write sees the state after this block's attention (without the
            # read), normalised as the MLP's input is
            x_write = self.post_attention_layernorm(out) if self.write_after_attention else None
            read, memory, weights = self.memory(x_hat, memory, start, memory_update_interval, key_valid,
                                                return_weights, x_write)
            cache = replace(cache, memory=memory)
            out = out + read
        out = out + self.mlp(self.post_attention_layernorm(out))
        return out, cache, weights


# ----------------------------------------------------------------------------- model


class LM2PreTrainedModel(PreTrainedModel):
    config_class = LM2Config
    config: LM2Config
    base_model_prefix = "model"
    _no_split_modules = ["LM2DecoderLayer"]
    _supports_sdpa = True
    # The state (window KV + memory) is our own object, not a transformers Cache: generate() must not build a
    # DynamicCache for us; the model creates an LM2Cache on the first call and returns it.
    _is_stateful = False

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False

    def _init_weights(self, module):
        super()._init_weights(module)  # Linear and Embedding ~ N(0, initializer_range), RMSNorm weight = 1
        if isinstance(module, LM2Memory):
            cfg = self.config
            init.copy_(module.initial_memory, identity_memory(cfg.memory_slots, cfg.hidden_size))
            init.zeros_(module.o_proj.weight)  # memory adds nothing at initialisation
            if hasattr(module, "forget_gate"):
                init.constant_(module.forget_gate.bias, cfg.memory_forget_bias)
            if hasattr(module, "slot_keys"):
                init.normal_(module.slot_keys, std=cfg.initializer_range)
            if hasattr(module, "shift_proj"):  # start by writing each token plus the one before it
                init.eye_(module.shift_proj.weight)
            if hasattr(module, "read_scale"):
                init.constant_(module.read_scale, float(cfg.memory_read_scale))
            if hasattr(module, "lookback_bias"):  # start near "previous": each step further back costs `init`
                init.copy_(module.lookback_bias, lookback_start(cfg.memory_write_lookback,
                                                                cfg.memory_write_lookback_init))
        elif isinstance(module, LM2Attention):
            if hasattr(module, "key_shift"):
                init.zeros_(module.key_shift)  # a = 1/2: each key starts as the mean of its own and the previous one
            if hasattr(module, "qkv_conv"):
                identity = torch.zeros_like(module.qkv_conv)
                identity[0] = 1.0
                init.copy_(module.qkv_conv, identity)  # Llama's attention at initialisation
        elif isinstance(module, LM2Rotary):
            init.copy_(module.inv_freq, rope_frequencies(self.config)[0])


class LM2Model(LM2PreTrainedModel):
    def __init__(self, config: LM2Config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(LM2DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LM2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = LM2Rotary(config)
        self.post_init()

    def new_cache(self, memory_update_interval: int | None = None) -> LM2Cache:
        """A fresh streaming state; ``memory_update_interval`` overrides the config's U (e.g. 1 at test time)."""
        interval = memory_update_interval or self.config.memory_update_interval
        if interval < 1:
            raise ValueError(f"memory_update_interval={interval} is invalid: it must be a positive integer.")
        return LM2Cache(len(self.layers), interval, self.config.sliding_window)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: LM2Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        return_memory_weights: bool = False,
        memory_update_interval: int | None = None,
    ) -> tuple[torch.Tensor, LM2Cache, list | None]:
        """Returns the final hidden states (B, T, D), the new state (``cache`` is left as it was) and, if asked,
        each memory layer's read weights (B, T, N) (None for layers without memory)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if cache is None:
            cache = self.new_cache(memory_update_interval)
        elif memory_update_interval is not None and memory_update_interval != cache.memory_update_interval:
            raise ValueError(
                f"memory_update_interval={memory_update_interval} differs from the state's U="
                f"{cache.memory_update_interval}: update boundaries are fixed for a sequence; start a new state."
            )
        b, t = x.shape[:2]
        key_valid = None
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError("attention_mask must be 2-D (batch, tokens) with 1 for real tokens, 0 for padding")
            mask = attention_mask[:, -t:].bool()  # generate() passes the mask of the whole sequence so far
            key_valid = None if bool(mask.all()) else mask
        cos, sin = self.rotary_emb(cache.offset, t, x.dtype)
        all_weights, states = [], []
        for layer, layer_cache in zip(self.layers, cache.layers):
            x, state, w = layer(x, cos, sin, layer_cache, cache.offset, cache.memory_update_interval, key_valid,
                                return_memory_weights)
            states.append(state)
            all_weights.append(w)
        cache = replace(cache, offset=cache.offset + t, layers=states)
        return self.norm(x), cache, (all_weights if return_memory_weights else None)


class LM2ForCausalLM(LM2PreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LM2Config):
        super().__init__(config)
        self.model = LM2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def new_cache(self, memory_update_interval: int | None = None) -> LM2Cache:
        return self.model.new_cache(memory_update_interval)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: LM2Cache | None = None,
        past_key_values: LM2Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        memory_update_interval: int | None = None,
        return_memory_weights: bool = False,
        position_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Causal LM forward. ``cache`` (alias ``past_key_values``) is the streaming state: pass the returned
        state back to continue the same sequences. ``position_ids`` is accepted for generate() but unused:
        positions come from the state's offset (RoPE is relative, so a constant shift from left padding does not
        change attention). ``labels`` are shifted inside, as in transformers (-100 = ignored).
        """
        cache = cache if cache is not None else past_key_values
        hidden, cache, weights = self.model(input_ids, attention_mask, cache, inputs_embeds,
                                            return_memory_weights, memory_update_interval)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        out = CausalLMOutputWithPast(loss=loss, logits=logits,
                                     past_key_values=cache if (use_cache is None or use_cache) else None)
        if return_memory_weights:
            out["memory_weights"] = weights
        return out

    # ------------------------------------------------------------------ loading a Llama
    @classmethod
    def from_llama(cls, source, **memory_fields) -> "LM2ForCausalLM":
        """Build an LM2 model from a Llama: an HF ``LlamaForCausalLM`` (or any module with its state dict), a
        checkpoint folder, or a state dict plus ``config=`` a LlamaConfig. Memory fields (``memory_layers``,
        ``memory_slots``, ...) add memory; the new parameters get their initialisation (zero read output, so the
        logits are the Llama's), everything else is the checkpoint's.
        """
        if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            # The memory is new here: transformers' load report need not list its (initialised) parameters as
            # missing. Only the report changes; from_pretrained on an LM2 checkpoint still lists them.
            # Reading the Llama's config ourselves spares transformers' "model of type llama" warning.
            config = AutoConfig.from_pretrained(source)
            if isinstance(config, LM2Config):
                kwargs = memory_fields
            else:
                kwargs = {"config": _lm2_config_from(config, memory_fields)}
            # A throwaway subclass carries the "memory may be missing" rule, so that cls itself never changes
            # (safe with loads in other threads); the loaded model is then given its real class back.
            loader = type(cls.__name__, (cls,), {
                "_keys_to_ignore_on_load_missing": [*(cls._keys_to_ignore_on_load_missing or []), r"\.memory\."],
            })
            model = loader.from_pretrained(source, **kwargs)
            model.__class__ = cls
            return model
        if isinstance(source, dict):
            state = source
            llama_config = memory_fields.pop("config", None)
            if llama_config is None:
                raise ValueError("from_llama(state_dict) needs config=<the Llama's config>")
        else:
            state, llama_config = source.state_dict(), source.config
        config = _lm2_config_from(llama_config, memory_fields)
        model = cls(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if ".memory." not in k and not (k == "lm_head.weight" and
                                                                      config.tie_word_embeddings)]
        if missing or unexpected:
            raise ValueError(
                f"the checkpoint does not match an LM2/Llama model of this config: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        return model

    # ------------------------------------------------------------------ generation
    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, **kwargs):
        kwargs.pop("position_ids", None)
        if past_key_values is not None:  # feed only the tokens the state has not seen yet
            input_ids = input_ids[:, past_key_values.offset :]
            kwargs.pop("next_sequence_length", None)
        return super().prepare_inputs_for_generation(
            input_ids, past_key_values=past_key_values, attention_mask=attention_mask, **kwargs
        )
