"""The LM2 memory module (paper eq. 1-6, made causal: docs/design.md section 1).

A memory bank M (B, N, D) per sequence and per memory block. Tokens read it by multi-head cross-attention
every token (eq. 1-3); every U tokens the chunk of tokens just read rewrites it through input and forget
gates (eq. 4-6). The math is a handful of pure functions; ``LM2Memory`` only owns the parameters; the state
is an explicit ``MemoryState`` value passed in and returned, never hidden on the module.

Causality: all tokens of a chunk read the bank as it stood at the chunk's start (the last update boundary
before them); the write that uses a chunk lands after its last token. Boundaries are absolute positions
(multiples of U from the start of the sequence), so streaming a sequence in pieces of any size gives the same
result as one call: an unfinished chunk's pooled statistics are additive and are carried in the state.

Speed: the loop over chunks runs ``chunk_step`` once per piece; where the write never uses the read ("input"
candidate, "replace" update) it runs the smaller ``address_step`` instead and ``read_banks`` reads every chunk at
once after it. ``set_compile(True)`` (or LM2_COMPILE_MEMORY=1) runs the step through ``torch.compile``, an opt-in
runtime switch with the same results (not a config field).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

# Keeps log(1 - w) finite when one token puts all of its weight on one slot (w == 1 with a single slot);
# it changes s = 1 - prod(1 - w) by at most 1e-6.
_MAX_WEIGHT = 1.0 - 1e-6
# Guards the division that turns weighted sums into weighted means for a slot that no token addressed;
# such a slot has s ~ 0, so whatever the mean is, the write leaves it unchanged.
_EPS = 1e-12


@dataclass
class ChunkStats:
    """Additive statistics of the tokens read so far in the current (unfinished) chunk."""

    weight: torch.Tensor  # (B, N)     sum_i w_ij
    x_sum: torch.Tensor  # (B, N, D)  sum_i w_ij x_hat_i
    e_sum: torch.Tensor | None  # (B, N, D)  sum_i w_ij h_i, h = the read before its output projection (see
    #                              below); None where the write does not use the read (``write_uses_read``)
    log_keep: torch.Tensor  # (B, N)  sum_i log(1 - w_ij)

    def __add__(self, other: "ChunkStats") -> "ChunkStats":
        e_sum = None if self.e_sum is None else self.e_sum + other.e_sum
        return ChunkStats(self.weight + other.weight, self.x_sum + other.x_sum, e_sum,
                          self.log_keep + other.log_keep)

    def apply(self, fn) -> "ChunkStats":
        """The same statistics with ``fn`` applied to each tensor (detach, index_select)."""
        return ChunkStats(fn(self.weight), fn(self.x_sum), None if self.e_sum is None else fn(self.e_sum),
                          fn(self.log_keep))


@dataclass
class MemoryState:
    """One memory block's state for a batch of sequences."""

    memory: torch.Tensor  # (B, N, D) the bank as of the last update boundary
    pending: ChunkStats | None = None  # statistics of the unfinished chunk, if any
    previous: torch.Tensor | None = None  # (B, D) the last token's write state (shift / previous address; 0 if padding)
    history: torch.Tensor | None = None  # (B, L, D) the last L tokens' write states (lookback address)
    history_valid: torch.Tensor | None = None  # (B, L) 1 where that token exists and is not padding, else 0

    def detach(self) -> "MemoryState":
        pending = None if self.pending is None else self.pending.apply(torch.Tensor.detach)
        previous = None if self.previous is None else self.previous.detach()
        history = None if self.history is None else self.history.detach()
        return MemoryState(self.memory.detach(), pending, previous, history, self.history_valid)

    def index_select(self, index: torch.Tensor) -> "MemoryState":
        pending = None if self.pending is None else self.pending.apply(lambda t: t.index_select(0, index))
        previous = None if self.previous is None else self.previous.index_select(0, index)
        history, valid = ((None, None) if self.history is None else
                          (self.history.index_select(0, index), self.history_valid.index_select(0, index)))
        return MemoryState(self.memory.index_select(0, index), pending, previous, history, valid)


# ----------------------------------------------------------------------------- pure functions


def identity_memory(num_slots: int, dim: int) -> torch.Tensor:
    """The paper's initial bank "M = I": row r is the unit vector e_(r mod D)."""
    m = torch.zeros(num_slots, dim)
    rows = torch.arange(num_slots)
    m[rows, rows % dim] = 1.0
    return m


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, L, D) -> (B, H, L, D/H)"""
    b, length, d = x.shape
    return x.view(b, length, num_heads, d // num_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, L, D/H) -> (B, L, D)"""
    b, h, length, dh = x.shape
    return x.transpose(1, 2).reshape(b, length, h * dh)


def scaled_queries(q: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """Eq. (1)'s queries (B, H, T, dh), made ready for a plain dot product with ``head_keys``: q / sqrt(dh), or,
    with ``scale`` (H,), the unit query times its head's learned scale, so that the scores are cosine similarities
    times that scale (QK-norm): the read can be as sharp as the scale allows from the first step, where plain dot
    products of a fresh model give near-uniform weights over the slots. Per token, so done once for a whole call
    where the bank does not come into it."""
    if scale is None:
        return q / math.sqrt(q.shape[-1])
    return F.normalize(q, dim=-1) * scale.view(-1, 1, 1)


def head_keys(k: torch.Tensor, slot_keys: torch.Tensor | None, num_heads: int,
              scale: torch.Tensor | None) -> torch.Tensor:
    """The bank's projected keys M W_K (B, N, D), plus the fixed slot addresses ``slot_keys`` (N, D), per head
    (B, H, N, dh), of unit length under QK-norm (``scale`` given)."""
    if slot_keys is not None:
        k = k + slot_keys
    k = split_heads(k, num_heads)
    return k if scale is None else F.normalize(k, dim=-1)


def slot_weights(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Eq. (1)'s attention weights over the slots, softmax(Q K^T), for queries from ``scaled_queries`` and keys
    from ``head_keys``: (B, H, T, N). Materialised on purpose: the write needs them (only T x N per head)."""
    return (q @ k.transpose(-1, -2)).softmax(dim=-1)


def top1_route(w: torch.Tensor) -> torch.Tensor:
    """Hard write routing: each token's write weights (B, T, N) become one-hot on the slot it reads most.

    The forward value is exactly one-hot; the gradient is the soft weights' (straight-through), so the read
    addressing still learns from the write. With soft weights every slot receives a weighted mean of all tokens,
    and facts written in one chunk end up averaged together in every slot (an unordered bag: a query can find
    which values were stated, not which key each belonged to).
    """
    hard = F.one_hot(w.argmax(dim=-1), w.shape[-1]).to(w.dtype)
    return hard + (w - w.detach())


def shifted(x_hat: torch.Tensor, previous: torch.Tensor | None, token_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, D) -> the state of the token before each one: the carried ``previous`` (or zeros at the start of a
    sequence) for the first, zeros where the token before is padding."""
    first = torch.zeros_like(x_hat[:, :1]) if previous is None else previous.unsqueeze(1)
    before = torch.cat([first, x_hat[:, :-1]], dim=1)
    if token_mask is not None:
        valid = torch.cat([torch.ones_like(token_mask[:, :1]), token_mask[:, :-1]], dim=1)
        before = before * valid.unsqueeze(-1).to(before.dtype)
    return before


def lookback_address(q_lin: torch.Tensor, x_write: torch.Tensor, history: torch.Tensor | None,
                     history_valid: torch.Tensor | None, token_mask: torch.Tensor | None, q_proj: nn.Linear,
                     score_proj: nn.Linear, lag_bias: torch.Tensor):
    """The lookback write address: token i is written where a token up to L back reads, chosen by
    a_il = softmax_l(x_(i-l) w_s + b_l) over l = 1..L (w_s: how much a token looks like something to store
    things under, e.g. a key or a sentence's subject; b_l: a learned preference per distance). The address query is
    sum_l a_il q_(i-l), with q = x W_Q the read's own query, so a value is stored exactly where its key reads.

    q_lin (B, T, D): this call's write states projected by W_Q; x_write (B, T, D) those states; history (B, L, D),
    history_valid (B, L): the L tokens before the call (None at a sequence start). Tokens that do not exist or are
    padding are never chosen; a token with no token before it gets weight zero everywhere (it does not write).
    Returns the address queries (B, T, D), whether each token has one (B, T), the new (history, history_valid) and
    the choice a (B, T, L), a[:, i, l - 1] being token i's weight on the token l back (for inspection).
    """
    b, t, d = x_write.shape
    lags = lag_bias.shape[0]
    if history is None:
        history, history_valid = x_write.new_zeros(b, lags, d), x_write.new_zeros(b, lags)
    valid = x_write.new_ones(b, t) if token_mask is None else token_mask.to(x_write.dtype)
    states = torch.cat([history, x_write], dim=1)  # (B, L + T, D)
    exists = torch.cat([history_valid, valid], dim=1)  # (B, L + T)
    queries = torch.cat([q_proj(history), q_lin], dim=1)
    before = (lags + torch.arange(t, device=x_write.device)[:, None]
              - torch.arange(1, lags + 1, device=x_write.device)[None, :])  # (T, L): the position of token i - l
    scores = score_proj(states).squeeze(-1)[:, before] + lag_bias  # (B, T, L)
    ok = exists[:, before] > 0
    # a large finite negative, not -inf: a token with no candidate gets a finite (uniform) softmax, zeroed below
    a = scores.masked_fill(~ok, -1e9).softmax(dim=-1) * ok.to(scores.dtype)
    address = torch.einsum("btl,btld->btd", a, queries[:, before])
    return address, ok.any(dim=-1), (states[:, -lags:], exists[:, -lags:]), a


def lookback_start(lags: int, cost: float) -> torch.Tensor:
    """The lookback distance preference at initialisation, b_l = -cost * (l - 1) for l = 1..lags
    (``memory_write_lookback_init``): near "previous" for a cost of 1 or more, uniform for 0."""
    return -float(cost) * torch.arange(lags, dtype=torch.float32)


def chunk_stats(w: torch.Tensor, x_hat: torch.Tensor, e_mem: torch.Tensor | None) -> ChunkStats:
    """Pool a run of tokens into per-slot statistics, weighting token i by its read weight w_ij on slot j.

    w (B, T, N) (already zero for padding tokens), x_hat and e_mem (B, T, D). Matrix products only: the cost is
    O(T N D) and nothing of size (T, N, D) is built. ``e_mem`` may be taken before a linear output projection
    and the projection applied to the pooled mean instead: the weighted mean commutes with it; None where the
    write does not use the read (no ``e_sum``).
    """
    wt = w.transpose(1, 2)  # (B, N, T)
    return ChunkStats(
        weight=w.sum(dim=1),
        x_sum=wt @ x_hat,
        e_sum=None if e_mem is None else wt @ e_mem,
        log_keep=torch.log1p(-w.clamp(max=_MAX_WEIGHT)).sum(dim=1),
    )


@dataclass
class FusedWeights:
    """The per-chunk projections, concatenated once per forward call so that each chunk launches fewer matmuls
    (the parameters, and their names, stay those of the separate layers):

    kv: [W_K; W_V], applied to the bank; x: [W_in; W_x] (W_x only for the "input"/"both" writes), applied to
    x_bar; o, forget, forget_bias: the read's output projection and the forget gate, applied to the pooled read.
    Only concatenations: nothing here costs more than a copy of the weights.
    """

    kv: torch.Tensor
    x: torch.Tensor
    x_bias: torch.Tensor
    o: torch.Tensor
    forget: torch.Tensor | None
    forget_bias: torch.Tensor | None


def write_uses_read(write_mode: str, update: str) -> bool:
    """Whether the write needs the pooled read e_bar: for the candidate ("read", "both") or the forget gate ("gated"
    update). Only the "input" candidate with the "replace" update takes everything from the token states."""
    return write_mode != "input" or update != "replace"


def gated_write(memory: torch.Tensor, stats: ChunkStats, fused: FusedWeights, write_mode: str,
                update: str = "gated") -> torch.Tensor:
    """Eq. (4)-(6) per slot, for one finished chunk.

    x_bar_j, e_bar_j: the read-weighted means of x_hat and E_mem; s_j = 1 - prod_i (1 - w_ij) is how strongly
    slot j was addressed. g_in = sigmoid(x_bar W_in), g_f = sigmoid(e_bar W_forget), and

        M_j <- (1 - s_j (1 - g_f_j)) * M_j + s_j * g_in_j * candidate_j

    with candidate = tanh(e_bar) (eq. 6, "read"), tanh(x_bar W_x) ("input") or tanh(e_bar + x_bar W_x) ("both").
    With s = 1 this is eq. (6) exactly; a slot nobody addressed (s = 0) is kept. The statistics pool the read
    before its output projection, which ``fused.o`` applies.

    ``update="replace"`` is the bounded alternative (no forget gate): M_j <- M_j + s_j g_in_j (candidate_j - M_j),
    a convex mix of the old slot and the candidate, so writing a slot replaces its content instead of piling up
    (the delta rule's spirit) and a bank written thousands of times stays within [-1, 1] wherever M0 does.
    """
    denom = stats.weight.unsqueeze(-1).clamp_min(_EPS)  # (B, N, 1)
    d = memory.shape[-1]
    e_bar = F.linear(stats.e_sum / denom, fused.o) if write_uses_read(write_mode, update) else None
    x_side = F.linear(stats.x_sum / denom, fused.x, fused.x_bias)
    s = (-torch.expm1(stats.log_keep)).unsqueeze(-1)  # (B, N, 1)
    if write_mode == "read":
        in_pre, candidate = x_side, torch.tanh(e_bar)  # eq. (6)
    else:
        in_pre, x_proj = x_side.split(d, dim=-1)
        candidate = torch.tanh(x_proj if write_mode == "input" else e_bar + x_proj)
    g_in = torch.sigmoid(in_pre)
    if update == "replace":
        return memory + s * g_in * (candidate - memory)
    g_forget = torch.sigmoid(F.linear(e_bar, fused.forget, fused.forget_bias))
    return (1.0 - s * (1.0 - g_forget)) * memory + s * g_in * candidate


def chunk_pieces(start: int, length: int, interval: int) -> list[tuple[int, int, bool]]:
    """Split the token range [start, start + length) at absolute multiples of ``interval``.

    Returns (offset within the call, piece length, whether the piece ends on an update boundary).
    """
    pieces, pos, end = [], start, start + length
    while pos < end:
        boundary = (pos // interval + 1) * interval
        stop = min(boundary, end)
        pieces.append((pos - start, stop - pos, stop == boundary))
        pos = stop
    return pieces


def read_heads(q: torch.Tensor, memory: torch.Tensor, kv_weight: torch.Tensor, num_heads: int,
               slot_keys: torch.Tensor | None = None, scale: torch.Tensor | None = None,
               q_address: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Eq. (1) for queries q (B, H, T, dh) against a bank (B, N, D): the read before the output projection
    (B, T, D) and the read weights averaged over heads (B, T, N); with ``q_address``, also the weights those
    queries would read with (B, T, N), which then address the write. ``slot_keys`` (N, D): a fixed address per
    slot added to the content keys; ``scale`` (H,): the QK-norm read scale."""
    k, v = F.linear(memory, kv_weight).split(memory.shape[-1], dim=-1)
    k, v = head_keys(k, slot_keys, num_heads, scale), split_heads(v, num_heads)
    probs = slot_weights(scaled_queries(q, scale), k)
    address = None if q_address is None else slot_weights(scaled_queries(q_address, scale), k).mean(dim=1)
    return merge_heads(probs @ v), probs.mean(dim=1), address


def chunk_step(q: torch.Tensor, q_address: torch.Tensor | None, memory: torch.Tensor,
               pending: ChunkStats | None, write_input: torch.Tensor, token_mask: torch.Tensor | None,
               strength: torch.Tensor | None, fused: FusedWeights, slot_keys: torch.Tensor | None,
               scale: torch.Tensor | None, num_heads: int, write_route: str, write_mode: str, update: str,
               ends_chunk: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, ChunkStats | None]:
    """One piece of a chunk (at most U tokens, none crossing a boundary): read the bank, pool the piece into
    the pending statistics and, if the piece ends the chunk, write. All arguments are the piece's slices.

    Returns the read before the output projection (B, l, D), the read weights (B, l, N), the bank and the
    pending statistics after the piece (None after a write). ``LM2Memory.forward`` calls it once per piece,
    eagerly or, after ``set_compile(True)``, through ``torch.compile``.
    """
    h, w_read, address = read_heads(q, memory, fused.kv, num_heads, slot_keys, scale, q_address)
    memory, pending = pool_and_write(w_read if address is None else address, write_input, h, memory, pending,
                                     token_mask, strength, fused, write_route, write_mode, update, ends_chunk)
    return h, w_read, memory, pending


def pool_and_write(w: torch.Tensor, write_input: torch.Tensor, h: torch.Tensor | None, memory: torch.Tensor,
                   pending: ChunkStats | None, token_mask: torch.Tensor | None, strength: torch.Tensor | None,
                   fused: FusedWeights, write_route: str, write_mode: str, update: str,
                   ends_chunk: bool) -> tuple[torch.Tensor, ChunkStats | None]:
    """The write half of a chunk step: the piece's write weights w (B, l, N) routed, masked and scaled by the
    write strength, its statistics added to the pending ones and, if the piece ends the chunk, the write.
    Returns the bank and the pending statistics (None after a write)."""
    if write_route == "top1":
        w = top1_route(w)
    if token_mask is not None:
        w = w * token_mask[:, :, None].to(w.dtype)
    if strength is not None:
        w = w * strength
    stats = chunk_stats(w, write_input, h if write_uses_read(write_mode, update) else None)
    pending = stats if pending is None else pending + stats
    if ends_chunk:
        memory, pending = gated_write(memory, pending, fused, write_mode, update), None
    return memory, pending


def address_step(q_address: torch.Tensor, memory: torch.Tensor, pending: ChunkStats | None,
                 write_input: torch.Tensor, token_mask: torch.Tensor | None, strength: torch.Tensor | None,
                 k_weight: torch.Tensor, fused: FusedWeights, slot_keys: torch.Tensor | None,
                 scale: torch.Tensor | None, num_heads: int, write_route: str, update: str,
                 ends_chunk: bool) -> tuple[torch.Tensor, torch.Tensor, ChunkStats | None]:
    """``chunk_step`` for a write that never uses the read (the "input" candidate with the "replace" update):
    per piece only the write's address weights, the pooled statistics and, at a chunk's end, the write. The
    reads wait until the loop is over (``read_banks``), all chunks in one batched attention.

    q_address (B, H, l, dh): the addressing queries through ``scaled_queries``. Returns the piece's keys
    (``head_keys``, for the read after the loop), the bank and the pending statistics after the piece.
    """
    k = head_keys(F.linear(memory, k_weight), slot_keys, num_heads, scale)
    w = slot_weights(q_address, k).mean(dim=1)  # (B, l, N)
    memory, pending = pool_and_write(w, write_input, None, memory, pending, token_mask, strength, fused,
                                     write_route, "input", update, ends_chunk)
    return k, memory, pending


def read_banks(q: torch.Tensor, keys: list[torch.Tensor], banks: list[torch.Tensor], v_weight: torch.Tensor,
               sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (1) for every piece of a call at once: piece p's queries (from ``scaled_queries``, (B, H, T, dh) for
    all pieces) against keys[p] (``head_keys``) and the values of banks[p], the bank it read. Pieces of one length
    (a call that starts and ends on update boundaries, as in training) go through one batched attention; others
    one at a time. Returns the read before the output projection (B, T, D) and the weights over heads (B, T, N)."""
    if len(set(sizes)) > 1:
        parts = [read_banks(q_p, [k], [m], v_weight, [n]) for q_p, k, m, n in zip(q.split(sizes, dim=2), keys,
                                                                                   banks, sizes)]
        return torch.cat([r for r, _ in parts], dim=1), torch.cat([w for _, w in parts], dim=1)
    b, h, t, dh = q.shape
    p = len(sizes)
    k = torch.stack(keys, dim=2)  # (B, H, P, N, dh)
    v = F.linear(torch.stack(banks, dim=1), v_weight)  # (B, P, N, D)
    v = v.view(b, p, -1, h, dh).permute(0, 3, 1, 2, 4)  # (B, H, P, N, dh)
    probs = slot_weights(q.reshape(b, h, p, t // p, dh), k)  # (B, H, P, l, N)
    out = (probs @ v).view(b, h, t, dh)
    return merge_heads(out), probs.mean(dim=1).reshape(b, t, -1)


# The compiled fast path: a runtime switch, never a config field (a saved model does not depend on it).
_COMPILE = os.environ.get("LM2_COMPILE_MEMORY", "") not in ("", "0")
_COMPILE_OPTIONS: dict = {}
_COMPILED: dict = {}


def set_compile(enabled: bool = True, **options) -> None:
    """Run every memory block's chunk step (``chunk_step``: read, pooled statistics, write) through
    ``torch.compile(chunk_step, **options)`` (e.g. ``dynamic=False``), or back eagerly with ``enabled=False``.
    Process-wide and off by default; the environment variable ``LM2_COMPILE_MEMORY=1`` turns it on at import.
    The outputs, banks and gradients equal the eager ones within fp32 rounding (tests/test_memory_compile.py).

    The first calls compile (seconds to minutes). The step has one graph per combination of an unfinished chunk
    carried in or not, a write at its end or not, gradients or not, and static or dynamic piece length, so
    turning the switch on raises dynamo's recompile limit to at least ``RECOMPILE_LIMIT`` (at dynamo's default
    of 8, a streaming run would silently fall back to eager).
    """
    global _COMPILE, _COMPILE_OPTIONS
    if options != _COMPILE_OPTIONS:
        _COMPILED.clear()
    _COMPILE, _COMPILE_OPTIONS = bool(enabled), dict(options)


def compile_enabled() -> bool:
    return _COMPILE


RECOMPILE_LIMIT = 64


def _compiled(step):
    """``step`` (``chunk_step`` or ``address_step``) through torch.compile, compiled once per process."""
    if step not in _COMPILED:
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
        setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
        _COMPILED[step] = torch.compile(step, **_COMPILE_OPTIONS)
    return _COMPILED[step]


# ----------------------------------------------------------------------------- the module


class LM2Memory(nn.Module):
    """A memory block's parameters (all under the ``memory.`` prefix of its decoder block) and its step.

    Read (eq. 1-3): E_mem = o_proj(MHA(x_hat W_Q, M W_K, M W_V)), gated by g_out = sigmoid(E_mem W_out).
    ``o_proj`` starts at zero so that adding memory to a pretrained Llama leaves its outputs unchanged.
    Write (eq. 4-6): ``gated_write`` once per U tokens.
    """

    def __init__(self, config):
        super().__init__()
        d, n = config.hidden_size, config.memory_slots
        self.num_heads = config.memory_heads
        self.write_mode = config.memory_write
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.out_gate = nn.Linear(d, d)  # eq. (2)
        self.in_gate = nn.Linear(d, d)  # eq. (4)
        self.update = config.memory_update
        # whether the loop over chunks can leave the reads for later (address_step, read_banks): true where the
        # write's candidate and gates come from the token states alone, the read's pooled value unused
        self.read_after_writes = not write_uses_read(self.write_mode, self.update)
        self.write_route = config.memory_write_route
        self.write_address = config.memory_write_address
        if self.update == "gated":
            self.forget_gate = nn.Linear(d, d)  # eq. (5); the "replace" update needs no forget gate
        if config.memory_write_gate == "token":
            # one write strength per token: a token that carries nothing worth keeping writes (and erases) nothing
            self.write_gate = nn.Linear(d, 1)
        self.write_threshold = float(config.memory_write_threshold)
        self.threshold_straight_through = config.memory_write_threshold_gradient == "straight_through"
        if config.memory_write_shift:
            # the write sees each token with the one before it (a token shift, i.e. a width-2 causal convolution):
            # a value is written together with the key that preceded it, which attention may not have copied yet
            self.shift_proj = nn.Linear(d, d, bias=False)
        if self.write_address == "lookback":
            # which of the last L tokens a token is written under (lookback_address): how much each token looks
            # like a key, plus a preference per distance
            self.lookback_score = nn.Linear(d, 1, bias=False)  # a bias would not move a softmax
            start = lookback_start(config.memory_write_lookback, config.memory_write_lookback_init)
            if config.memory_write_lookback_learn_bias:
                self.lookback_bias = nn.Parameter(start)
            else:  # held at its start (saved with the model under the same name)
                self.register_buffer("lookback_bias", start)
        if self.write_address == "query":
            # W_A: the write's own query. With "self" a token is written where it reads and with "previous" where
            # the token before it reads; here the address is learned, so a value can be stored where the key it
            # belongs to (a few tokens back, within the attention's reach) reads
            self.address_proj = nn.Linear(d, d, bias=False)
        if config.memory_slot_keys:
            # K = M W_K + A: a learned address per slot that writes do not move, so a token can find the slot that
            # an earlier token with the same key wrote to by where it is, not only by what it now holds
            self.slot_keys = nn.Parameter(torch.zeros(n, d))
        if config.memory_read_scale is not None:
            self.read_scale = nn.Parameter(torch.full((self.num_heads,), float(config.memory_read_scale)))
        if self.write_mode in ("input", "both"):
            self.input_proj = nn.Linear(d, d, bias=False)  # candidate from the token states (ablation)
        self.initial_memory = nn.Parameter(identity_memory(n, d))  # M0, learned

    def initial_state(self, batch_size: int) -> MemoryState:
        """A fresh sequence starts from M0: memory never leaks across sequences or batch rows."""
        return MemoryState(self.initial_memory.unsqueeze(0).expand(batch_size, -1, -1))

    def fused_weights(self) -> FusedWeights:
        i = self.in_gate
        if self.write_mode == "read":
            x, x_bias = i.weight, i.bias
        else:
            x = torch.cat([i.weight, self.input_proj.weight])
            x_bias = torch.cat([i.bias, torch.zeros_like(i.bias)])
        forget = getattr(self, "forget_gate", None)
        return FusedWeights(kv=torch.cat([self.k_proj.weight, self.v_proj.weight]), x=x, x_bias=x_bias,
                            o=self.o_proj.weight, forget=None if forget is None else forget.weight,
                            forget_bias=None if forget is None else forget.bias)

    def forward(
        self,
        x_hat: torch.Tensor,
        state: MemoryState,
        start: int,
        memory_update_interval: int,
        token_mask: torch.Tensor | None = None,
        return_weights: bool = False,
        x_write: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, MemoryState, torch.Tensor | None]:
        """Read for T tokens at absolute positions [start, start + T) and write at every boundary they cross.

        x_hat (B, T, D): the block's normalised input. token_mask (B, T): False for padding, which reads but
        never writes. x_write (B, T, D): the states the write is taken from (pooled states, gates, strength and
        its address unless "self"; ``memory_write_after_attention``), x_hat when None. Returns the gated read
        g_out * E_mem (B, T, D), the new state and, if asked, the read weights (B, T, N) for inspection.
        """
        memory, pending = state.memory, state.pending
        # Everything that does not depend on the bank is done once for all T tokens, outside the loop over
        # chunks: the query projection here, the output projection and gate after it (the write pools the
        # read before the projection; see chunk_stats).
        q_lin = self.q_proj(x_hat)  # (B, T, D)
        q = split_heads(q_lin, self.num_heads)  # (B, H, T, dh)
        fused = self.fused_weights()
        # per-token write strength (B, T, 1), or None: the paper's write, where every read also writes
        xw = x_hat if x_write is None else x_write
        q_write = q_lin if x_write is None else self.q_proj(xw)  # the read's query of the write states
        strength = torch.sigmoid(self.write_gate(xw)) if hasattr(self, "write_gate") else None
        if strength is not None and self.write_threshold:  # weak writes dropped: they would wear the bank down
            kept = strength * (strength >= self.write_threshold).to(strength.dtype)
            # straight-through: the forward value is exactly `kept` (s + (-s) = 0, s + 0 = s), the backward the identity
            strength = strength + (kept - strength).detach() if self.threshold_straight_through else kept
        previous = state.previous
        write_input, q_address = xw, None  # what the write pools into x_bar; the queries that address it
        if hasattr(self, "shift_proj") or self.write_address == "previous":
            if hasattr(self, "shift_proj"):
                write_input = xw + self.shift_proj(shifted(xw, previous, token_mask))
            if self.write_address == "previous":
                # token i is written where token i - 1 reads: a value lands where its key will look for it. The
                # query projection has no bias, so shifting the queries equals projecting the shifted states.
                # The very first token of a sequence has no address and does not write.
                before = shifted(q_write, None if previous is None else self.q_proj(previous), token_mask)
                q_address = split_heads(before, self.num_heads)
                if previous is None:
                    first = torch.ones_like(x_hat[:, :, 0])
                    first[:, 0] = 0.0
                    strength = first.unsqueeze(-1) if strength is None else strength * first.unsqueeze(-1)
            last = xw[:, -1]
            previous = last if token_mask is None else last * token_mask[:, -1:].to(last.dtype)
        if self.write_address == "query":
            q_address = split_heads(self.address_proj(xw), self.num_heads)
        history, history_valid = state.history, state.history_valid
        if self.write_address == "lookback":
            address, has_one, (history, history_valid), _ = lookback_address(
                q_write, xw, history, history_valid, token_mask, self.q_proj, self.lookback_score,
                self.lookback_bias)
            q_address = split_heads(address, self.num_heads)
            has_one = has_one.unsqueeze(-1).to(xw.dtype)
            strength = has_one if strength is None else strength * has_one
        slot_keys, scale = getattr(self, "slot_keys", None), getattr(self, "read_scale", None)
        pieces = chunk_pieces(start, x_hat.shape[1], memory_update_interval)
        sizes = [length for _, length, _ in pieces]

        def split(t: torch.Tensor | None, dim: int = 1) -> list:
            # one split, not a slice per piece: the backward of a split is one concatenation, where each slice's
            # backward would fill a zero tensor of the full length and add into it (quadratic in the pieces)
            return [None] * len(sizes) if t is None else t.split(sizes, dim=dim)

        if self.read_after_writes:
            # The write never uses the read: the loop only addresses and writes, and the reads of all pieces
            # follow in one batched attention against the banks they saw (the same values, fewer small ops).
            step = _compiled(address_step) if _COMPILE else address_step
            k_weight, v_weight = fused.kv.split(x_hat.shape[-1])
            q_read = scaled_queries(q, scale)
            q_addressing = q_read if q_address is None else scaled_queries(q_address, scale)
            keys, banks = [], []
            for (_, _, ends_chunk), qa_i, x_i, m_i, s_i in zip(
                    pieces, split(q_addressing, 2), split(write_input), split(token_mask), split(strength)):
                banks.append(memory)
                k, memory, pending = step(qa_i, memory, pending, x_i, m_i, s_i, k_weight, fused, slot_keys, scale,
                                          self.num_heads, self.write_route, self.update, ends_chunk)
                keys.append(k)
            read, read_weights = read_banks(q_read, keys, banks, v_weight, sizes)
        else:
            reads, weights = [], []
            step = _compiled(chunk_step) if _COMPILE else chunk_step
            for (_, _, ends_chunk), q_i, qa_i, x_i, m_i, s_i in zip(
                    pieces, split(q, 2), split(q_address, 2), split(write_input), split(token_mask), split(strength)):
                h, w, memory, pending = step(q_i, qa_i, memory, pending, x_i, m_i, s_i, fused, slot_keys, scale,
                                             self.num_heads, self.write_route, self.write_mode, self.update,
                                             ends_chunk)
                reads.append(h)  # (B, l, D)
                if return_weights:
                    weights.append(w)  # (B, l, N)
            read = torch.cat(reads, dim=1) if len(reads) > 1 else reads[0]
            read_weights = (torch.cat(weights, dim=1) if len(weights) > 1 else weights[0]) if weights else None
        e_mem = self.o_proj(read)  # (B, T, D)
        gated = torch.sigmoid(self.out_gate(e_mem)) * e_mem  # eq. (2)-(3): the gated read joins the residual
        read_weights = read_weights if return_weights else None
        new_state = replace(state, memory=memory, pending=pending, previous=previous, history=history,
                            history_valid=history_valid)
        return gated, new_state, read_weights
