"""The RMT baseline: streaming equals one call, save/load, gradients through the recurrent memory, generate()."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from lm2 import LM2Config, LM2ForCausalLM
from lm2.rmt import RMTConfig, RMTForCausalLM

SMALL = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2)


def rmt_model(seed: int = 0, **fields) -> RMTForCausalLM:
    torch.manual_seed(seed)
    fields = {"rmt_memory_tokens": 3, "rmt_segment_length": 5, **SMALL, **fields}
    return RMTForCausalLM(RMTConfig.from_preset("tiny", **fields)).eval()


@pytest.mark.parametrize("pieces", [(2, 7, 1, 3, 10, 4), (5, 5, 5, 5, 7), (27,), (1,) * 27])
def test_streaming_in_pieces_equals_one_call(pieces):
    model = rmt_model()
    ids = torch.randint(0, 97, (2, 27))
    with torch.no_grad():
        full = model(ids).logits
        state, parts, pos = None, [], 0
        for size in pieces:
            out = model(ids[:, pos : pos + size], cache=state, use_cache=True)
            state, pos = out.past_key_values, pos + size
            parts.append(out.logits)
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=2e-5, rtol=0)
    assert state.offset == 27 and state.segment is not None  # 27 = 5 segments of 5 + 2 pending tokens


def test_memory_is_the_only_path_between_segments():
    model = rmt_model(rmt_segment_length=6)
    ids = torch.randint(0, 97, (1, 18))
    changed = ids.clone()
    changed[0, 2] = (ids[0, 2] + 1) % 97  # a token of the first segment
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
        # Without the carried memory (every segment reads the learned embeddings) a segment sees nothing before it.
        fresh = torch.cat([model(ids[:, i : i + 6]).logits for i in (0, 6, 12)], dim=1)
    assert (a[0, 6:] - b[0, 6:]).abs().max() > 1e-6  # later segments feel the change through memory
    torch.testing.assert_close(fresh[0, :6], a[0, :6])
    assert (fresh[0, 6:] - a[0, 6:]).abs().max() > 1e-6


def test_gradients_flow_back_across_segments():
    model = rmt_model(rmt_segment_length=4).train()
    ids = torch.randint(0, 97, (2, 12))
    labels = torch.full_like(ids, -100)
    labels[:, 9:] = ids[:, 9:]  # loss on the third segment only
    embeddings = model.model.embed_tokens.weight
    model(ids, labels=labels).loss.backward()
    assert model.memory_embeddings.grad.abs().max() > 0  # read by segment 1, carried to segment 3
    first_segment_only = sorted(set(ids[:, :4].flatten().tolist()) - set(ids[:, 4:].flatten().tolist()))
    assert first_segment_only and embeddings.grad[first_segment_only].abs().max() > 0
    # Truncating backpropagation at the state cuts that path.
    model.zero_grad()
    state = model(ids[:, :8], use_cache=True).past_key_values.detach()
    model(ids[:, 8:], cache=state, labels=labels[:, 8:]).loss.backward()
    assert model.memory_embeddings.grad is None or model.memory_embeddings.grad.abs().max() == 0


def test_loss_with_logits_to_keep_scores_the_last_targets():
    model = rmt_model()
    ids = torch.randint(0, 97, (1, 13))
    with torch.no_grad():
        logits = model(ids).logits
        loss = model(ids, labels=ids, logits_to_keep=4).loss
    reference = torch.nn.functional.cross_entropy(logits[0, 9:12], ids[0, 10:13])
    torch.testing.assert_close(loss, reference)


def test_save_and_auto_load_round_trip(tmp_path):
    model = rmt_model(rmt_memory_tokens=4, rmt_segment_length=7)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, RMTForCausalLM)
    assert (loaded.config.rmt_memory_tokens, loaded.config.rmt_segment_length) == (4, 7)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    ids = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


def test_generate_equals_an_argmax_loop():
    model = rmt_model(seed=2)
    ids = torch.randint(0, 97, (1, 8))
    expected = ids
    with torch.no_grad():
        for _ in range(9):  # crosses two segment boundaries
            expected = torch.cat([expected, model(expected).logits[:, -1:].argmax(-1)], dim=1)
        got = model.generate(ids, max_new_tokens=9, do_sample=False, pad_token_id=0)
    assert got.tolist() == expected.tolist()


def test_right_padded_rows_match_unpadded_rows():
    model = rmt_model()
    ids = torch.randint(1, 97, (2, 13))
    mask = torch.ones(2, 13, dtype=torch.long)
    mask[1, 8:] = 0
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        alone = model(ids[1:, :8]).logits
    torch.testing.assert_close(batched[1, :8], alone[0], atol=1e-5, rtol=0)


def test_same_backbone_as_vanilla_plus_the_memory_embeddings():
    config = LM2Config.from_preset("tiny", **SMALL)  # the trainer passes an LM2 preset config (with memory)
    rmt = RMTForCausalLM(config, num_memory_tokens=5, segment_length=16)
    vanilla = LM2ForCausalLM(LM2Config.from_preset("tiny", memory_layers=0, **SMALL))
    assert rmt.config.memory_layers == 0 and rmt.config.rmt_memory_tokens == 5
    extra = {n for n, _ in rmt.named_parameters()} - {n for n, _ in vanilla.named_parameters()}
    assert extra == {"memory_embeddings"}
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(rmt) == count(vanilla) + 5 * SMALL["hidden_size"]


def test_state_size_is_bounded():
    model = rmt_model(rmt_segment_length=8)
    state, sizes = None, []
    with torch.no_grad():
        for _ in range(6):
            state = model(torch.randint(0, 97, (1, 16)), cache=state).past_key_values
            sizes.append(state.nbytes())
    assert len(set(sizes)) == 1, sizes


@pytest.mark.parametrize("field,value,expected", [
    ("rmt_memory_tokens", 0, "rmt_memory_tokens=0"),
    ("rmt_segment_length", -3, "positive integer"),
    ("memory_layers", 2, "no LM2 memory"),
])
def test_invalid_config_values_raise_clear_errors(field, value, expected):
    with pytest.raises(ValueError, match=expected):
        RMTConfig.from_preset("tiny", **{field: value})
