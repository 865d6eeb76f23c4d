"""The Recurrent Memory Transformer baseline (Bulatov et al., 2022), as BABILong evaluates it (docs/design.md
section 2).

The backbone is LM2's own decoder with no memory blocks (``memory_layers=0``: exactly a Llama), so an RMT, a
vanilla model and an LM2 of the same config differ only in their memory mechanism. RMT adds K learned memory
embeddings and processes the input in segments of S tokens; each segment is run through the backbone as

    [read memory (K) | segment tokens (S) | write memory (K)]                         (B, K + S + K, D)

with ordinary causal attention inside the segment and nothing outside it. The read and the write positions both
take the current memory as their input embeddings; the final (normed) hidden states at the write positions are
the next segment's memory. The first segment reads the learned embeddings. RoPE positions restart in every
segment, so any input length works, and gradients flow from a segment back through all earlier ones (truncated
by ``state.detach()``).

Streaming. Segment boundaries are absolute positions (multiples of S from the start of the sequence), whatever
the sizes of the pieces a caller feeds. The state (:class:`RMTState`) holds the memory and, for an unfinished
segment, the backbone's key/value cache of [read memory, tokens so far], so the next piece continues that
segment exactly; the write runs when a segment's S-th token arrives. Feeding a sequence in pieces therefore
gives the logits of one call, and the state stays at most K + S keys per layer however long the input is.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin
from transformers import initialization as init
from transformers.modeling_outputs import CausalLMOutputWithPast

from lm2.cache import LM2Cache
from lm2.configuration_lm2 import LM2Config
from lm2.modeling_lm2 import LM2Model, LM2PreTrainedModel, causal_lm_loss


class RMTConfig(LM2Config):
    r"""An LM2 config whose backbone has no memory blocks, plus

    rmt_memory_tokens (K): memory embeddings read before and written after every segment.
    rmt_segment_length (S): tokens per segment; boundaries fall at absolute multiples of S.
    """

    model_type = "lm2-rmt"

    rmt_memory_tokens: int = 16
    rmt_segment_length: int = 512

    def validate_lm2(self) -> None:
        super().validate_lm2()
        for name in ("rmt_memory_tokens", "rmt_segment_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"RMTConfig.{name}={value!r} is invalid: it must be a positive integer.")
        if self.memory_layer_indices():
            raise ValueError(
                f"RMTConfig.memory_layers={self.memory_layers!r} is invalid: the RMT backbone has no LM2 memory "
                "blocks (memory_layers=0); its memory is the rmt_memory_tokens embeddings."
            )

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "RMTConfig":
        """An LM2 preset's backbone (its memory blocks removed) with RMT fields over it."""
        overrides.setdefault("memory_layers", 0)
        return super().from_preset(name, **overrides)

    @classmethod
    def from_lm2(cls, config: LM2Config, **fields) -> "RMTConfig":
        """The same backbone as ``config`` (an LM2 or Llama config) without memory blocks, plus RMT fields."""
        values = config.to_dict()
        for key in ("model_type", "architectures", "transformers_version", "auto_map"):
            values.pop(key, None)
        values["memory_layers"] = 0
        values.update(fields)
        return cls(**values)


@dataclass
class RMTState:
    """The streaming state of a batch of sequences: memory, the unfinished segment, and the position offset."""

    segment_length: int
    memory: torch.Tensor | None = None  # (B, K, D) what the current segment reads (None: not started)
    segment: LM2Cache | None = None  # backbone KV of [read memory, tokens so far] of the unfinished segment
    seen: torch.Tensor | None = None  # (B,) whether the unfinished segment has a real (non-padding) token yet
    offset: int = 0  # absolute position of the next token

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.offset

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        """Select batch rows (beam search)."""
        if self.memory is not None:
            self.memory = self.memory.index_select(0, beam_idx)
        if self.segment is not None:
            self.segment.reorder_cache(beam_idx)
        if self.seen is not None:
            self.seen = self.seen.index_select(0, beam_idx)

    def detach(self) -> "RMTState":
        """Cut the autograd graph (truncated backpropagation through time) without changing any value."""
        if self.memory is not None:
            self.memory = self.memory.detach()
        if self.segment is not None:
            self.segment.detach()
        return self

    def nbytes(self) -> int:
        """Bytes held by the state's tensors (bounded by K + S keys per layer plus the memory)."""
        total = 0 if self.memory is None else self.memory.numel() * self.memory.element_size()
        return total + (0 if self.segment is None else self.segment.nbytes())


class RMTForCausalLM(LM2PreTrainedModel, GenerationMixin):
    """RMT over LM2's memory-free backbone: same parameter names as LM2/Llama plus ``memory_embeddings`` (K, D).

    Same interface as :class:`lm2.modeling_lm2.LM2ForCausalLM`: ``forward`` takes any input length and the state
    returned by the previous call (``cache``), ``new_cache()`` gives a fresh state, ``generate()`` works.
    """

    config_class = RMTConfig
    config: RMTConfig
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: LM2Config, **rmt_fields):
        # The trainer builds RMT from an LM2 preset config plus its `model.rmt` fields; "num_memory_tokens" and
        # "segment_length" are accepted as the short names of the two RMT fields.
        aliases = {"num_memory_tokens": "rmt_memory_tokens", "memory_tokens": "rmt_memory_tokens",
                   "segment_length": "rmt_segment_length"}
        rmt_fields = {aliases.get(k, k): v for k, v in rmt_fields.items()}
        if not isinstance(config, RMTConfig) or rmt_fields:
            config = RMTConfig.from_lm2(config, **rmt_fields)
        super().__init__(config)
        self.model = LM2Model(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.memory_embeddings = nn.Parameter(torch.empty(config.rmt_memory_tokens, config.hidden_size))
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, RMTForCausalLM):
            # As in the RMT code: memory embeddings on the scale of the token embeddings.
            init.normal_(module.memory_embeddings, mean=0.0, std=self.config.initializer_range)

    def new_cache(self) -> RMTState:
        return RMTState(self.config.rmt_segment_length)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: RMTState | None = None,
        past_key_values: RMTState | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Causal LM forward over ``input_ids`` (B, T) continuing ``cache`` (alias ``past_key_values``).

        ``attention_mask`` (B, T) or (B, offset + T) marks padding with 0: padded tokens are hidden from every
        other position, and a row whose whole segment is padding keeps its memory. Other keyword arguments from
        generate() (position_ids, ...) are ignored: positions restart in every segment. ``labels`` are shifted
        inside (-100 = ignored), as in transformers.
        """
        if input_ids is None:
            raise ValueError("RMTForCausalLM needs input_ids (inputs_embeds is not supported)")
        state = cache if cache is not None else past_key_values
        state = state if state is not None else self.new_cache()
        b, t = input_ids.shape
        k, s = self.config.rmt_memory_tokens, state.segment_length
        if state.memory is None:
            state.memory = self.memory_embeddings[None].expand(b, k, -1)  # (B, K, D)
        token_mask = None
        if attention_mask is not None:
            if attention_mask.dim() != 2:
                raise ValueError("attention_mask must be 2-D (batch, tokens) with 1 for real tokens, 0 for padding")
            token_mask = attention_mask[:, -t:].bool()  # generate() passes the mask of the whole sequence so far
            token_mask = None if bool(token_mask.all()) else token_mask

        outputs, pos = [], 0
        while pos < t:
            n = min(t - pos, s - state.offset % s)  # stop at the next absolute segment boundary
            starts, ends = state.segment is None, (state.offset + n) % s == 0
            parts = [self.model.embed_tokens(input_ids[:, pos : pos + n])]  # (B, n, D)
            if starts:
                parts.insert(0, state.memory)
                state.segment = self.model.new_cache()
            if ends:
                parts.append(state.memory)
            mask = None
            if token_mask is not None:
                ones = token_mask.new_ones(b, k)
                mask = torch.cat([ones] * starts + [token_mask[:, pos : pos + n]] + [ones] * ends, dim=1)
                seen = token_mask[:, pos : pos + n].any(dim=1)
                state.seen = seen if starts else (None if state.seen is None else state.seen | seen)
            else:
                state.seen = None  # None: every row has a real token in this segment
            hidden, state.segment, _ = self.model(inputs_embeds=torch.cat(parts, dim=1), attention_mask=mask,
                                                  cache=state.segment)
            first = k if starts else 0
            outputs.append(hidden[:, first : first + n])
            if ends:
                memory = hidden[:, -k:]  # (B, K, D) the write positions' final hidden states
                if state.seen is not None:  # a row that saw only padding in this segment keeps its memory
                    memory = torch.where(state.seen[:, None, None], memory, state.memory)
                state.memory, state.segment, state.seen = memory, None, None
            state.offset += n
            pos += n

        hidden = torch.cat(outputs, dim=1)  # (B, T, D)
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(hidden)
        loss = None
        if labels is not None:
            loss = causal_lm_loss(logits, labels)
        return CausalLMOutputWithPast(loss=loss, logits=logits,
                                      past_key_values=state if (use_cache is None or use_cache) else None)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, **kwargs):
        kwargs.pop("position_ids", None)
        if past_key_values is not None:  # feed only the tokens the state has not seen yet
            input_ids = input_ids[:, past_key_values.offset :]
            kwargs.pop("next_sequence_length", None)
        return super().prepare_inputs_for_generation(
            input_ids, past_key_values=past_key_values, attention_mask=attention_mask, **kwargs
        )


def _register() -> None:
    AutoConfig.register(RMTConfig.model_type, RMTConfig, exist_ok=True)
    AutoModelForCausalLM.register(RMTConfig, RMTForCausalLM, exist_ok=True)


_register()
