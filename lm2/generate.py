"""Text generation as a few small functions, in the spirit of gpt-fast: ``sample`` picks a token from logits,
``prefill`` feeds a prompt, ``decode_one_token`` feeds one token, and ``generate_tokens`` / ``generate_stream``
chain them and yield tokens (or text) as they are produced.

Prompts of any length: ``prefill`` feeds the prompt segment by segment and carries the model's state (for LM2:
the last W keys and values of every layer plus the memory banks, ``lm2/cache.py``), so a prompt far longer than
the attention window reaches the answer only through memory, at a flat cost per token. Streaming gives the same
logits as one call (docs/design.md section 1), hence the same tokens.

Test-time memory updates (paper section 4.4, "one inference step is a forward pass for one token"):
``memory_update_interval=1`` writes the memory after every token, prompt and answer alike. The default is the
model's configured interval U; it is fixed for the whole sequence, since update boundaries are absolute.

``generate_tokens`` and ``generate_stream`` are for one sequence at a time (batch 1); ``prefill`` and
``decode_one_token`` take left-padded batches (BABILong's greedy answers use them), and ``model.generate()`` does
batches too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch

from lm2.cache import stream
from lm2.model_facts import eos_token_ids
from lm2.modeling_lm2 import LM2ForCausalLM

# Segment length for prompts when the model has no attention window: long enough to keep the matrix products
# efficient, short enough that one segment's attention scores stay small.
DEFAULT_SEGMENT_LENGTH = 1024


def sample(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``logits`` (B, V) -> (B,).

    ``temperature == 0`` is greedy (argmax). Otherwise the token is drawn from softmax(logits / temperature),
    restricted to the nucleus: the most likely tokens whose cumulative probability first reaches ``top_p``
    (the most likely token is always kept). A seeded ``generator`` makes the draw reproducible.
    """
    if temperature < 0:
        raise ValueError(f"temperature={temperature} is invalid: use 0 (greedy) or a positive value")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p={top_p} is invalid: it must be in (0, 1]")
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # A token is dropped when the tokens ranked above it already hold top_p of the mass.
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # multinomial renormalises


def new_state(model, memory_update_interval: int | None = None):
    """A fresh state for ``model``, or None to let the model make its default one on the first call.

    ``memory_update_interval`` (U) needs an LM2 model: U = 1 is the paper's test-time update.
    """
    interval = memory_update_interval
    if interval is None:
        return None
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ValueError(f"memory_update_interval={interval!r} is invalid: a positive number of tokens per memory "
                         "write (1 = the paper's test-time update)")
    if not isinstance(model, LM2ForCausalLM):
        raise ValueError(f"memory_update_interval={interval}: {type(model).__name__} has no memory update "
                         "interval; only LM2 models take it")
    return model.new_cache(interval)


def resolve_segment_length(model, segment_length: int | None) -> int:
    """``segment_length``, or when None the model's attention window (``sliding_window``) if it has one, else
    ``DEFAULT_SEGMENT_LENGTH``."""
    if segment_length is None:
        segment_length = getattr(model.config, "sliding_window", None) or DEFAULT_SEGMENT_LENGTH
    return segment_length  # lm2.cache.segments refuses a length below 1


@torch.no_grad()
def prefill(model, input_ids: torch.Tensor, cache=None, segment_length: int | None = None,
            attention_mask: torch.Tensor | None = None, on_segment=None):
    """Feed a prompt (B, T) ``segment_length`` tokens at a time, carrying the state.

    Returns the state and the logits of the prompt's last position (B, V). ``segment_length`` None: see
    ``resolve_segment_length``. ``attention_mask`` (B, T): 0 for the left padding of a batch.
    ``on_segment(cache, logits, tokens)``: called after every segment (progress).
    """
    if input_ids.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token")
    return stream(model, input_ids, resolve_segment_length(model, segment_length), cache, on_segment,
                  attention_mask=attention_mask)


@torch.no_grad()
def decode_one_token(model, token: torch.Tensor, cache, temperature: float = 0.0, top_p: float = 1.0,
                     generator: torch.Generator | None = None,
                     attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
    """Feed one token per row (B,) and sample the next one: returns (next token (B,), state).
    ``attention_mask`` (B, 1): ones, needed once the prompt's attention mask had padding."""
    cache, logits = stream(model, token[:, None], 1, cache, attention_mask=attention_mask)
    return sample(logits, temperature, top_p, generator), cache


def _as_prompt(input_ids: Sequence[int] | torch.Tensor, device: torch.device) -> torch.Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] != 1:
        raise ValueError(f"generation takes one prompt (a list of ids or a (1, T) tensor), got shape "
                         f"{tuple(ids.shape)}; use model.generate() for batches")
    return ids.to(device)


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def generate_tokens(model, input_ids: Sequence[int] | torch.Tensor, max_new_tokens: int, temperature: float = 0.0,
                    top_p: float = 1.0, memory_update_interval: int | None = None, segment_length: int | None = None,
                    seed: int | None = None, eos_token_ids: Iterable[int] = ()) -> Iterator[int]:
    """Yield up to ``max_new_tokens`` token ids continuing ``input_ids``, each as soon as it is chosen.

    The prompt goes through ``prefill`` in segments; generation stops after an end-of-sequence token (which is
    yielded, as ``model.generate()`` returns it). ``seed`` seeds the sampler (None: torch's global generator).
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens={max_new_tokens} is invalid: it must be >= 0")
    device = _device(model)
    ids = _as_prompt(input_ids, device)
    eos = set(eos_token_ids)
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    if max_new_tokens == 0:
        return
    cache, logits = prefill(model, ids, new_state(model, memory_update_interval), segment_length)
    token = sample(logits, temperature, top_p, generator)  # (1,)
    for produced in range(1, max_new_tokens + 1):
        value = int(token)
        yield value
        if value in eos or produced == max_new_tokens:
            return
        token, cache = decode_one_token(model, token, cache, temperature, top_p, generator)


def encode_prompt(tokenizer, prompt: str, chat_template: bool = True) -> list[int]:
    """Token ids of ``prompt``: as a user turn of the tokenizer's chat template (with the assistant's header
    after it) when the tokenizer has one and ``chat_template`` is True, else the plain text with the
    tokenizer's usual special tokens."""
    if chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])  # the template holds them already
    return list(tokenizer(prompt)["input_ids"])


def _new_text(tokenizer, ids: list[int], prefix: int, read: int) -> tuple[str, int, int]:
    """Incremental detokenisation: the text that ``ids[read:]`` adds, and the new (prefix, read) offsets.

    Decoding from ``prefix`` (a few tokens back) rather than from ``read`` keeps what depends on the left
    context, such as the space SentencePiece drops at the start of a decode. Text that ends in U+FFFD is held
    back: it is an incomplete UTF-8 character whose remaining bytes are in tokens not produced yet.
    """
    before = tokenizer.decode(ids[prefix:read], skip_special_tokens=True)
    after = tokenizer.decode(ids[prefix:], skip_special_tokens=True)
    if len(after) > len(before) and not after.endswith("\ufffd"):
        return after[len(before):], read, len(ids)
    return "", prefix, read


def detokenize_stream(tokenizer, tokens: Iterable[int]) -> Iterator[str]:
    """Turn a stream of token ids into a stream of text pieces whose concatenation is the decoded text."""
    ids: list[int] = []
    prefix = read = 0
    for token in tokens:
        ids.append(token)
        text, prefix, read = _new_text(tokenizer, ids, prefix, read)
        if text:
            yield text
    # Whatever is still held back (a truncated UTF-8 character at the very end) is emitted as it decodes.
    rest = tokenizer.decode(ids[prefix:], skip_special_tokens=True)[len(
        tokenizer.decode(ids[prefix:read], skip_special_tokens=True)):]
    if rest:
        yield rest


def generate_stream(model, tokenizer, prompt: str, max_new_tokens: int = 256, temperature: float = 0.0,
                    top_p: float = 1.0, memory_update_interval: int | None = None, segment_length: int | None = None,
                    seed: int | None = 0, chat_template: bool = True) -> Iterator[str]:
    """Yield the model's answer to ``prompt`` as text pieces, as the tokens are produced.

    The prompt is wrapped in the tokenizer's chat template when it has one (``chat_template=False`` feeds the
    raw text); generation stops at an end-of-sequence token of the tokenizer or of the model's generation
    config, or after ``max_new_tokens``. See ``generate_tokens`` for the other arguments.
    """
    ids = encode_prompt(tokenizer, prompt, chat_template)
    tokens = generate_tokens(model, ids, max_new_tokens, temperature, top_p, memory_update_interval, segment_length,
                             seed, eos_token_ids(model, tokenizer))
    yield from detokenize_stream(tokenizer, tokens)
