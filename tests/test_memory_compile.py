"""The compiled fast path of the memory recurrence (``lm2.memory.set_compile``) equals the eager one.

Compiling with inductor on CPU takes about 30 s for even one graph of a tiny model on this project's loaded
2-core machine, so the default suite's check traces one graph (the paper's memory, ``dynamic=False``, pieces of
one length) with the ``aot_eager`` backend (dynamo's capture and AOT autograd, no code generation); the same
check with inductor, the variants, streaming in uneven pieces and the gradients are marked slow.
"""

from __future__ import annotations

import pytest
import torch

from helpers import MEMORY_VARIANTS, memory_model

from lm2 import memory as memory_module

ATOL = 1e-5


@pytest.fixture
def compiled():
    """Turns the fast path on with the given options for one test, and back off (and dynamo reset) after. A test
    that used it must also have run compiled graphs, whole (no graph break), without hitting the recompile limit
    (which would silently fall back to eager)."""
    from torch._dynamo.utils import counters

    def turn_on(**options):
        torch._dynamo.reset()
        counters.clear()
        memory_module.set_compile(True, **options)
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
        yield turn_on
    memory_module.set_compile(False)
    graphs, breaks = counters["stats"]["unique_graphs"], dict(counters["graph_break"])
    torch._dynamo.reset()
    assert graphs > 0 and not breaks, (graphs, breaks)


def run(model, ids, pieces=None, grad=False):
    """Logits, final banks and pending statistics of one call (``pieces=None``) or of streaming in pieces."""
    context = torch.enable_grad() if grad else torch.no_grad()
    with context:
        if pieces is None:
            out = model(ids, use_cache=True)
            logits, cache = out.logits, out.past_key_values
        else:
            cache, parts, pos = None, [], 0
            for size in pieces:
                out = model(ids[:, pos : pos + size], cache=cache, use_cache=True)
                cache, pos = out.past_key_values, pos + size
                parts.append(out.logits)
            logits = torch.cat(parts, 1)
    states = [layer.memory for layer in cache.layers if layer.memory is not None]
    return logits, states


def assert_same(eager, fast):
    (logits_e, states_e), (logits_f, states_f) = eager, fast
    torch.testing.assert_close(logits_f, logits_e, atol=ATOL, rtol=0)
    assert len(states_e) == len(states_f) > 0
    for se, sf in zip(states_e, states_f):
        torch.testing.assert_close(sf.memory, se.memory, atol=ATOL, rtol=0)
        assert (se.pending is None) == (sf.pending is None)
        if se.pending is not None:
            for name in ("weight", "x_sum", "e_sum", "log_keep"):
                fast, eager = getattr(sf.pending, name), getattr(se.pending, name)
                assert (fast is None) == (eager is None), name  # e_sum is None where the write skips the read
                if eager is not None:
                    torch.testing.assert_close(fast, eager, atol=ATOL, rtol=0)


def test_switch_is_off_by_default_and_not_a_config_field():
    assert not memory_module.compile_enabled()
    model = memory_model()
    assert not any("compile" in key for key in model.config.to_dict())


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_equals_eager_fast(compiled, backend):
    model = memory_model(memory_update_interval=4)
    ids = torch.randint(0, 97, (2, 12))  # three whole chunks: one piece shape, one graph
    eager = run(model, ids)
    compiled(dynamic=False, backend=backend)
    fast = run(model, ids)
    assert_same(eager, fast)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["paper", "all"])
def test_compiled_equals_eager_one_call_and_streaming(compiled, variant):
    model = memory_model(memory_update_interval=5, **MEMORY_VARIANTS[variant])
    ids = torch.randint(0, 97, (2, 37))
    pieces = (2, 7, 3, 13, 1, 11)
    eager_one, eager_stream = run(model, ids), run(model, ids, pieces)
    compiled()
    assert_same(eager_one, run(model, ids))
    assert_same(eager_stream, run(model, ids, pieces))
    assert_same(eager_one, run(model, ids, pieces))  # and streaming compiled equals one eager call


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["paper", "all"])
def test_compiled_gradients_equal_eager(compiled, variant):
    model = memory_model(memory_update_interval=4, **MEMORY_VARIANTS[variant]).train()
    ids = torch.randint(0, 97, (2, 16))

    def grads():
        model.zero_grad()
        model(ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    eager = grads()
    compiled(dynamic=False)
    fast = grads()
    assert eager.keys() == fast.keys()
    for name in eager:
        torch.testing.assert_close(fast[name], eager[name], atol=ATOL, rtol=1e-4, msg=name)
