"""The memory module on its own, against a slow reference written straight from the equations."""

import math

import pytest
import torch

from helpers import randomize_memory, tiny_config

from lm2.memory import LM2Memory, MemoryState, chunk_pieces, identity_memory


@torch.no_grad()
def reference_memory(mem: LM2Memory, x_hat: torch.Tensor, memory: torch.Tensor, start: int, interval: int,
                     x_write: torch.Tensor | None = None):
    """docs/design.md section 1 with Python loops over tokens and slots: no vectorisation, no shared code.
    ``x_write``: the states the write is taken from (x_hat when None), the read always from x_hat.

    Returns the gated reads (B, T, D) and the final bank (B, N, D). Only whole chunks are written, so the
    caller passes a ``start`` on a boundary and the test only compares banks at boundaries.
    """
    b_size, t_len, d = x_hat.shape
    n, h = memory.shape[1], mem.num_heads
    dh = d // h
    wq, wk, wv, wo = (m.weight for m in (mem.q_proj, mem.k_proj, mem.v_proj, mem.o_proj))
    reads = torch.zeros(b_size, t_len, d, dtype=torch.float64)
    final = torch.zeros(b_size, n, d, dtype=torch.float64)
    for b in range(b_size):
        m = memory[b].double()
        chunk = []  # (x_hat_i, e_mem_i, w_i) of the unfinished chunk
        prev = torch.zeros(d, dtype=torch.float64)  # the token before (none at the start)
        seen = []  # the write states of the tokens before this one (lookback)
        for i in range(t_len):
            x = x_hat[b, i].double()
            xw = x if x_write is None else x_write[b, i].double()
            pooled = xw + mem.shift_proj.weight.double() @ prev if hasattr(mem, "shift_proj") else xw
            prev_x, prev = prev, xw
            q = wq.double() @ x
            keys = [wk.double() @ m[j] + (mem.slot_keys[j].double() if hasattr(mem, "slot_keys") else 0)
                    for j in range(n)]
            vals = [wv.double() @ m[j] for j in range(n)]
            head_out, w = torch.zeros(d, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
            for hh in range(h):
                sl = slice(hh * dh, (hh + 1) * dh)
                if hasattr(mem, "read_scale"):  # cosine similarity times the learned per-head scale
                    scores = torch.tensor([float(q[sl] @ keys[j][sl] / (q[sl].norm() * keys[j][sl].norm()))
                                           * float(mem.read_scale[hh]) for j in range(n)])
                else:
                    scores = torch.tensor([float(q[sl] @ keys[j][sl]) / math.sqrt(dh) for j in range(n)])
                p = torch.softmax(scores.double(), 0)
                for j in range(n):
                    head_out[sl] += p[j] * vals[j][sl]
                    w[j] += p[j] / h
            e = wo.double() @ head_out
            g_out = torch.sigmoid(mem.out_gate.weight.double() @ e + mem.out_gate.bias.double())
            reads[b, i] = g_out * e
            if mem.write_address != "self":  # "previous": where the token before reads (nowhere for the first)
                if mem.write_address == "query":  # where its own write query W_A x would read
                    qp = mem.address_proj.weight.double() @ xw
                elif mem.write_address == "lookback":  # a softmax choice among the L tokens before
                    back = [(lag, seen[-lag]) for lag in range(1, len(mem.lookback_bias) + 1) if lag <= len(seen)]
                    qp = None
                    if back:
                        sc = torch.tensor([float(mem.lookback_score.weight.double()[0] @ xj
                                                 + mem.lookback_bias.double()[lag - 1]) for lag, xj in back])
                        a = torch.softmax(sc.double(), 0)
                        qp = sum(a[k] * (wq.double() @ xj) for k, (_, xj) in enumerate(back))
                else:
                    qp = wq.double() @ prev_x if i > 0 else None
                w = torch.zeros(n, dtype=torch.float64)
                for hh in range(h if qp is not None else 0):
                    sl = slice(hh * dh, (hh + 1) * dh)
                    if hasattr(mem, "read_scale"):
                        sc = torch.tensor([float(qp[sl] @ keys[j][sl] / (qp[sl].norm().clamp_min(1e-12)
                                                                          * keys[j][sl].norm()))
                                           * float(mem.read_scale[hh]) for j in range(n)])
                    else:
                        sc = torch.tensor([float(qp[sl] @ keys[j][sl]) / math.sqrt(dh) for j in range(n)])
                    w += torch.softmax(sc.double(), 0) / h
            if mem.write_route == "top1" and w.sum() > 0:  # the token writes only the slot it reads most
                w = torch.nn.functional.one_hot(w.argmax(), n).double()
            if hasattr(mem, "write_gate"):  # the token's write strength scales its write weights
                g = torch.sigmoid(mem.write_gate.weight.double() @ xw + mem.write_gate.bias.double())
                w = w * (g if float(g) >= mem.write_threshold else 0.0)  # below the threshold: no write
            chunk.append((pooled, e, w))
            seen.append(xw)
            if (start + i + 1) % interval == 0:  # the chunk ends: write eq. (4)-(6), slot by slot
                new_m = m.clone()
                for j in range(n):
                    wsum = sum(float(c[2][j]) for c in chunk)
                    if wsum == 0.0:  # no token of the chunk wrote this slot (top-1 routing): it is kept
                        continue
                    x_bar = sum(c[2][j] * c[0] for c in chunk) / wsum
                    e_bar = sum(c[2][j] * c[1] for c in chunk) / wsum
                    s = 1.0 - math.prod(1.0 - float(c[2][j]) for c in chunk)
                    g_in = torch.sigmoid(mem.in_gate.weight.double() @ x_bar + mem.in_gate.bias.double())
                    if mem.write_mode == "read":
                        cand = torch.tanh(e_bar)
                    elif mem.write_mode == "input":
                        cand = torch.tanh(mem.input_proj.weight.double() @ x_bar)
                    else:
                        cand = torch.tanh(e_bar + mem.input_proj.weight.double() @ x_bar)
                    if mem.update == "replace":
                        new_m[j] = m[j] + s * g_in * (cand - m[j])
                    else:
                        g_f = torch.sigmoid(mem.forget_gate.weight.double() @ e_bar + mem.forget_gate.bias.double())
                        new_m[j] = (1 - s * (1 - g_f)) * m[j] + s * g_in * cand
                m, chunk = new_m, []
        final[b] = m
    return reads, final


# The paper's memory, then each option alone, then all options together (the defaults of new models).
MEMORY_OPTIONS = [{}, {"memory_update": "replace"}, {"memory_write_gate": "token"}, {"memory_read_scale": 4.0},
                  {"memory_write_gate": "token", "memory_write_threshold": 0.5},
                  {"memory_write_gate": "token", "memory_write_threshold": 0.5,
                   "memory_write_threshold_gradient": "straight_through"},
                  {"memory_slot_keys": True}, {"memory_write_route": "top1"}, {"memory_write_shift": True},
                  {"memory_write_address": "previous"},
                  {"memory_write_address": "previous", "memory_write_route": "top1"},
                  {"memory_write_address": "query"},
                  {"memory_write_address": "lookback", "memory_write_lookback": 3},
                  {"memory_update": "replace", "memory_write_gate": "token", "memory_read_scale": 4.0,
                   "memory_slot_keys": True, "memory_write_route": "top1", "memory_write_shift": True}]


@pytest.mark.parametrize("options", MEMORY_OPTIONS,
                         ids=lambda o: "-".join(f"{k[7:]}={v}" for k, v in o.items()) or "paper")
@pytest.mark.parametrize("write", ["read", "input", "both"])
@pytest.mark.parametrize("interval", [1, 3, 12])
def test_vectorised_memory_equals_slow_reference(write, interval, options):
    torch.manual_seed(0)
    cfg = tiny_config(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5,
                      memory_heads=2, memory_write=write, **options)
    mem = LM2Memory(cfg)
    randomize_memory_module(mem)
    x_hat = torch.randn(2, 12, 16)
    state = mem.initial_state(2)
    state = MemoryState(state.memory + 0.1 * torch.randn(2, 5, 16))  # distinct rows per batch
    gated, new_state, _ = mem(x_hat, state, start=0, memory_update_interval=interval)
    ref_reads, ref_bank = reference_memory(mem, x_hat, state.memory, start=0, interval=interval)
    torch.testing.assert_close(gated.double(), ref_reads, atol=1e-5, rtol=0)
    assert new_state.pending is None  # 12 tokens end on a boundary for U in {1, 3, 12}
    torch.testing.assert_close(new_state.memory.double(), ref_bank, atol=1e-5, rtol=0)
    # the test can fail: the bank really changed
    assert (new_state.memory - state.memory).abs().max() > 1e-3


@pytest.mark.parametrize("options", [{}, {"memory_write_address": "previous", "memory_write_shift": True},
                                     {"memory_write_address": "query", "memory_write_gate": "token"},
                                     {"memory_write_address": "lookback", "memory_write_gate": "token"}],
                         ids=["paper", "previous-shift", "query-gate", "lookback-gate"])
@pytest.mark.parametrize("write", ["read", "input"])
def test_a_separate_write_state_equals_slow_reference(write, options):
    """memory_write_after_attention: the write (pooled states, gates, strength, address) comes from other states
    than the read's. Against the reference with the two apart, and the write really depends on them."""
    torch.manual_seed(2)
    cfg = tiny_config(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5,
                      memory_heads=2, memory_write=write, **options)
    mem = LM2Memory(cfg)
    randomize_memory_module(mem, seed=2)
    x_hat, x_write = torch.randn(2, 12, 16), torch.randn(2, 12, 16)
    state = MemoryState(mem.initial_state(2).memory + 0.1 * torch.randn(2, 5, 16))
    gated, new_state, _ = mem(x_hat, state, start=0, memory_update_interval=4, x_write=x_write)
    ref_reads, ref_bank = reference_memory(mem, x_hat, state.memory, start=0, interval=4, x_write=x_write)
    torch.testing.assert_close(gated.double(), ref_reads, atol=1e-5, rtol=0)
    torch.testing.assert_close(new_state.memory.double(), ref_bank, atol=1e-5, rtol=0)
    _, same_state, _ = mem(x_hat, state, start=0, memory_update_interval=4)
    assert (new_state.memory - same_state.memory).abs().max() > 1e-3  # the write state matters


def randomize_memory_module(mem: LM2Memory, seed: int = 0) -> None:
    wrapper = torch.nn.Module()
    wrapper.memory = mem  # the helper matches parameters by their ".memory." prefix
    outer = torch.nn.Module()
    outer.block = wrapper
    randomize_memory(outer, std=0.4, seed=seed)


def test_tokens_below_the_write_threshold_leave_the_bank_as_it_was():
    """memory_write_threshold: a chunk whose tokens all write more weakly than the threshold keeps the bank exactly
    (the same chunk moves it without the threshold); the reads are untouched, since only the write is cut."""
    torch.manual_seed(3)
    cfg = dict(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5, memory_heads=2,
               memory_write_gate="token", memory_update="replace")
    free, cut = LM2Memory(tiny_config(**cfg)), LM2Memory(tiny_config(**cfg, memory_write_threshold=0.2))
    randomize_memory_module(free, seed=3)
    cut.load_state_dict(free.state_dict())
    with torch.no_grad():
        for mem in (free, cut):
            mem.write_gate.bias.fill_(-3.0)  # strengths near sigmoid(-3) = 0.047, below 0.2 for these inputs
            mem.write_gate.weight.mul_(0.1)
    x_hat = torch.randn(2, 8, 16)
    strength = torch.sigmoid(free.write_gate(x_hat))
    assert strength.max() < 0.2 and strength.min() > 0.01
    state = MemoryState(free.initial_state(2).memory + 0.1 * torch.randn(2, 5, 16))
    reads_free, moved, _ = free(x_hat, state, start=0, memory_update_interval=4)
    reads_cut, kept, _ = cut(x_hat, state, start=0, memory_update_interval=4)
    assert (moved.memory - state.memory).abs().max() > 1e-4
    torch.testing.assert_close(kept.memory, state.memory, atol=0, rtol=0)
    torch.testing.assert_close(reads_cut[:, :4], reads_free[:, :4])  # the first chunk reads the same bank


def test_straight_through_threshold_passes_the_gradient_a_cut_write_drops():
    """memory_write_threshold_gradient: both settings compute the same bank and reads; below the threshold "cut"
    gives the write gate no gradient while "straight_through" gives it one, and above the threshold (nothing cut)
    the two gradients are the same."""
    torch.manual_seed(4)
    cfg = dict(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5, memory_heads=2,
               memory_write_gate="token", memory_update="replace", memory_write_threshold=0.2)
    cut = LM2Memory(tiny_config(**cfg))
    through = LM2Memory(tiny_config(**cfg, memory_write_threshold_gradient="straight_through"))
    randomize_memory_module(cut, seed=4)
    through.load_state_dict(cut.state_dict())
    x_hat = torch.randn(2, 8, 16)
    state = MemoryState(cut.initial_state(2).memory + 0.1 * torch.randn(2, 5, 16))
    target = torch.randn(2, 5, 16)

    def write_gate_grads(bias: float):
        grads, outputs = [], []
        for mem in (cut, through):
            mem.zero_grad()
            with torch.no_grad():
                mem.write_gate.bias.fill_(bias)
                mem.write_gate.weight.fill_(0.0)  # every token writes with strength sigmoid(bias)
            reads, new, _ = mem(x_hat, state, start=0, memory_update_interval=4)
            ((new.memory - target) ** 2).sum().backward()
            grads.append(mem.write_gate.bias.grad.clone())
            outputs.append((reads.detach(), new.memory.detach()))
        torch.testing.assert_close(outputs[0], outputs[1], atol=0, rtol=0)  # the forward pass is the same
        return grads

    below_cut, below_through = write_gate_grads(-3.0)  # strength 0.047 < 0.2: every write dropped
    assert below_cut.abs().max() == 0 and below_through.abs().max() > 1e-3
    above_cut, above_through = write_gate_grads(0.0)  # strength 0.5: nothing dropped
    assert above_cut.abs().max() > 1e-3
    torch.testing.assert_close(above_through, above_cut)


def test_pieces_carry_an_unfinished_chunk():
    """Feeding 2 + 5 + 4 tokens with U = 4 gives the same reads and bank as one call of 11 tokens."""
    torch.manual_seed(1)
    mem = LM2Memory(tiny_config(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5,
                                memory_heads=2))
    randomize_memory_module(mem, seed=1)
    x_hat = torch.randn(1, 11, 16)
    full, full_state, _ = mem(x_hat, mem.initial_state(1), 0, 4)
    state, reads, pos = mem.initial_state(1), [], 0
    for size in (2, 5, 4):
        r, state, _ = mem(x_hat[:, pos : pos + size], state, pos, 4)
        reads.append(r)
        pos += size
    torch.testing.assert_close(torch.cat(reads, 1), full, atol=1e-6, rtol=0)
    torch.testing.assert_close(state.memory, full_state.memory, atol=1e-6, rtol=0)
    assert state.pending is not None  # 3 tokens of the third chunk are waiting for their write
    torch.testing.assert_close(state.pending.x_sum, full_state.pending.x_sum, atol=1e-6, rtol=0)


def test_read_weights_are_distributions_and_padding_never_writes():
    torch.manual_seed(2)
    mem = LM2Memory(tiny_config(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5,
                                memory_heads=2))
    randomize_memory_module(mem, seed=2)
    x_hat = torch.randn(1, 8, 16)
    _, state, w = mem(x_hat, mem.initial_state(1), 0, 8, return_weights=True)
    assert w.shape == (1, 8, 5) and (w >= 0).all() and (w <= 1).all()
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 8))
    all_pad = torch.zeros(1, 8, dtype=torch.bool)
    _, pad_state, _ = mem(x_hat, mem.initial_state(1), 0, 8, token_mask=all_pad)
    # a chunk of padding addresses no slot (s = 0), so the bank is kept exactly
    torch.testing.assert_close(pad_state.memory, mem.initial_state(1).memory)
    assert (state.memory - pad_state.memory).abs().max() > 1e-3


def test_identity_initial_memory_and_chunking():
    m = identity_memory(5, 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert chunk_pieces(6, 7, 4) == [(0, 2, True), (2, 4, True), (6, 1, False)]
    assert chunk_pieces(0, 3, 1) == [(0, 1, True), (1, 1, True), (2, 1, True)]


@pytest.mark.parametrize("options", [{}, {"memory_write_address": "lookback", "memory_write_gate": "token",
                                          "memory_read_scale": 4.0, "memory_slot_keys": True},
                                     {"memory_write_route": "top1", "memory_write_address": "previous"}],
                         ids=["plain", "lookback-gate-scale-keys", "top1-previous"])
@pytest.mark.parametrize("pieces", [(12,), (2, 5, 4, 1)], ids=["one-call", "uneven-pieces"])
def test_reads_after_the_writes_equal_reads_in_the_loop(options, pieces):
    """With the "input" write and the "replace" update the write never uses the read, so the loop over chunks
    only addresses and writes and the reads follow in one batch (``read_after_writes``). Its reads, read
    weights, banks and gradients equal those of the general loop, which reads chunk by chunk; in one call and
    streamed in pieces that start and end inside chunks, with padding."""
    torch.manual_seed(3)
    cfg = tiny_config(hidden_size=16, num_attention_heads=2, num_key_value_heads=1, memory_slots=5,
                      memory_heads=2, memory_write="input", memory_update="replace", **options)
    mem = LM2Memory(cfg)
    randomize_memory_module(mem, seed=3)
    assert mem.read_after_writes
    x_hat = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 9:] = False  # right padding in the second row

    def run(batched: bool):
        mem.zero_grad()
        mem.read_after_writes = batched
        x = x_hat.clone().requires_grad_(True)
        state, reads, weights, pos = mem.initial_state(2), [], [], 0
        for size in pieces:
            r, state, w = mem(x[:, pos:pos + size], state, pos, 4, token_mask=mask[:, pos:pos + size],
                              return_weights=True)
            reads.append(r)
            weights.append(w)
            pos += size
        reads, weights = torch.cat(reads, 1), torch.cat(weights, 1)
        (reads.square().sum() + state.memory.square().sum()).backward()
        grads = {name: p.grad.clone() for name, p in mem.named_parameters() if p.grad is not None}
        return reads, weights, state.memory, x.grad, grads

    fast, loop = run(True), run(False)
    mem.read_after_writes = True
    for a, b in zip(fast[:4], loop[:4]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert fast[4].keys() == loop[4].keys() and "q_proj.weight" in fast[4]
    for name in loop[4]:
        torch.testing.assert_close(fast[4][name], loop[4][name], atol=1e-5, rtol=1e-5, msg=name)
    assert (fast[2] - mem.initial_state(2).memory).abs().max() > 1e-3  # the banks were written
