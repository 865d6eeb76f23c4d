"""LM2ForCausalLM against references: transformers' Llama/Mistral logits, causality, streaming, generation."""

import copy
import dataclasses
import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from helpers import MEMORY_VARIANTS, memory_model, randomize_memory, tiny_config

import lm2  # noqa: F401  (registers the Auto classes)
from lm2 import LM2Config, LM2ForCausalLM

HF_FIELDS = dict(vocab_size=101, hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                 max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=False)


def hf_reference(kv_heads: int, window: int | None):
    torch.manual_seed(0)
    if window is None:
        model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=kv_heads, **HF_FIELDS))
    else:  # Mistral is Llama with a sliding window, with the same parameter names
        model = MistralForCausalLM(MistralConfig(num_key_value_heads=kv_heads, sliding_window=window, **HF_FIELDS))
    with torch.no_grad():  # make the norms non-trivial so a mistake in them shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("kv_heads", [4, 2, 1])
@pytest.mark.parametrize("window", [None, 5])
def test_no_memory_equals_transformers(kv_heads, window):
    ref = hf_reference(kv_heads, window)
    ours = LM2ForCausalLM.from_llama(ref, memory_layers=0, sliding_window=window).eval()
    ids = torch.randint(0, 101, (2, 23))
    with torch.no_grad():
        diff = (ours(ids).logits - ref(ids).logits).abs().max().item()
    assert diff <= 1e-5, diff
    # the names are Llama's: the state dicts have exactly the same keys
    assert set(ours.state_dict()) == set(ref.state_dict())


def test_llama_folder_loads_with_no_key_map_and_memory_changes_nothing_at_init(tmp_path):
    ref = hf_reference(2, None)
    ref.save_pretrained(tmp_path)
    plain = LM2ForCausalLM.from_pretrained(tmp_path).eval()
    with_memory = LM2ForCausalLM.from_pretrained(tmp_path, memory_layers=3, memory_slots=8, memory_heads=4,
                                                 memory_update_interval=4).eval()
    assert not plain.config.has_memory and with_memory.config.memory_layer_indices() == [0, 1, 2]
    ids = torch.randint(0, 101, (2, 19))
    with torch.no_grad():
        expected = ref(ids).logits
        assert (plain(ids).logits - expected).abs().max() <= 1e-5
        assert (with_memory(ids).logits - expected).abs().max() <= 1e-5
    # the Llama weights are the checkpoint's, the new ones are initialised as designed
    torch.testing.assert_close(with_memory.model.layers[1].self_attn.q_proj.weight,
                               ref.model.layers[1].self_attn.q_proj.weight)
    mem = with_memory.model.layers[0].memory
    assert mem.o_proj.weight.abs().max() == 0
    torch.testing.assert_close(mem.initial_memory[:4, :4], torch.eye(4))
    assert mem.q_proj.weight.std() > 0.01  # initialised, not left empty


def transformers_warnings(load) -> str:
    """What transformers logs while ``load()`` runs (its logger does not propagate to pytest's capture)."""
    import logging

    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("transformers")
    logger.addHandler(handler)
    try:
        load()
    finally:
        logger.removeHandler(handler)
    return "\n".join(messages)


def test_from_llama_folder_does_not_report_the_new_memory_as_missing(tmp_path):
    ref = hf_reference(2, None)
    ref.save_pretrained(tmp_path)
    fields = dict(memory_layers=2, memory_slots=8, memory_heads=4)
    loaded = {}
    report = transformers_warnings(lambda: loaded.setdefault("model", LM2ForCausalLM.from_llama(tmp_path, **fields)))
    assert ".memory." not in report and "model of type" not in report
    assert type(loaded["model"]) is LM2ForCausalLM and LM2ForCausalLM._keys_to_ignore_on_load_missing is None
    loaded["model"].save_pretrained(tmp_path / "lm2")
    assert json.loads((tmp_path / "lm2" / "config.json").read_text())["architectures"] == ["LM2ForCausalLM"]
    mem = loaded["model"].model.layers[1].memory
    torch.testing.assert_close(mem.initial_memory[:4, :4], torch.eye(4))
    assert mem.q_proj.weight.std() > 0.01 and mem.o_proj.weight.abs().max() == 0
    # a plain from_pretrained still says what it initialised
    assert "memory.q_proj" in transformers_warnings(lambda: LM2ForCausalLM.from_pretrained(tmp_path, **fields))


def test_from_llama_state_dict_rejects_a_mismatched_checkpoint():
    ref = hf_reference(2, None)
    state = ref.state_dict()
    model = LM2ForCausalLM.from_llama(state, config=ref.config, memory_layers=1)
    torch.testing.assert_close(model.lm_head.weight, ref.lm_head.weight)
    state.pop("model.layers.0.mlp.up_proj.weight")
    with pytest.raises(ValueError, match="does not match"):
        LM2ForCausalLM.from_llama(state, config=ref.config)


@pytest.mark.parametrize("variant", MEMORY_VARIANTS)
@pytest.mark.parametrize("interval", [1, 3, 24])
def test_causality_with_memory_in_every_block(interval, variant):
    model = memory_model(memory_update_interval=interval, **MEMORY_VARIANTS[variant])
    ids = torch.randint(0, 97, (2, 24))
    t = 9
    changed = ids.clone()
    changed[0, t] = (ids[0, t] + 1) % 97
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert (a[0, :t] - b[0, :t]).abs().max() == 0  # nothing before t moves
    assert (a[0, t:] - b[0, t:]).abs().max() > 1e-4  # and the change is visible from t on
    assert (a[1] - b[1]).abs().max() == 0  # batch rows are independent


@pytest.mark.parametrize("variant", MEMORY_VARIANTS)
@pytest.mark.parametrize("interval", [1, 3, 8])
def test_memory_is_visible_only_after_the_next_boundary(interval, variant):
    """With a window of 1 token, memory is the only path between positions. A change at t must not reach any
    token before the first boundary after t (those tokens read the bank from before t's write), and must
    reach the tokens after it. With attention_conv (width w) each block's convolution also passes the change w - 1
    tokens on, so the (w - 1) * layers tokens after t see it, and nothing else before the boundary does."""
    model = memory_model(memory_update_interval=interval, sliding_window=1, **MEMORY_VARIANTS[variant])
    ids = torch.randint(0, 97, (1, 24))
    t = 9
    changed = ids.clone()
    changed[0, t] = (ids[0, t] + 1) % 97
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    boundary = (t // interval + 1) * interval
    reach = max(0, MEMORY_VARIANTS[variant].get("attention_conv", 0) - 1) * model.config.num_hidden_layers
    other = [i for i in range(24) if i != t]
    unchanged = [i for i in other if i < boundary and not t < i <= t + reach]
    moved = [i for i in other if i >= boundary or t < i <= t + reach]
    assert (a[0, unchanged] - b[0, unchanged]).abs().max() == 0 if unchanged else True
    assert (a[0, moved] - b[0, moved]).abs().amax(-1).min() > 1e-6


@pytest.mark.parametrize("variant", MEMORY_VARIANTS)
@pytest.mark.parametrize("window", [None, 6])
@pytest.mark.parametrize("interval", [1, 5])
def test_streaming_in_uneven_pieces_equals_one_call(window, interval, variant):
    model = memory_model(memory_update_interval=interval, sliding_window=window, **MEMORY_VARIANTS[variant])
    ids = torch.randint(0, 97, (2, 37))
    with torch.no_grad():
        full = model(ids).logits
        cache, parts, pos = None, [], 0
        for size in (2, 7, 3, 13, 1, 11):  # the first pieces are shorter than the window
            out = model(ids[:, pos : pos + size], cache=cache, use_cache=True)
            cache, pos = out.past_key_values, pos + size
            parts.append(out.logits)
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=2e-5, rtol=0)
    assert cache.offset == 37
    if window is not None:  # the state keeps only the window
        assert all(layer.keys.shape[2] == window - 1 for layer in cache.layers)


def test_streaming_state_size_is_flat():
    model = memory_model(sliding_window=8)
    cache, sizes = None, []
    with torch.no_grad():
        for _ in range(6):  # 48 tokens, a multiple of U: no unfinished chunk is carried between calls
            cache = model(torch.randint(0, 97, (1, 48)), cache=cache).past_key_values
            sizes.append(cache.nbytes())
    assert len(set(sizes)) == 1, sizes


def greedy_reference(model, ids, steps, interval=None):
    for _ in range(steps):
        logits = model(ids, memory_update_interval=interval).logits
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    return ids


@pytest.mark.parametrize("interval", [1, 4])
@pytest.mark.parametrize("window", [None, 5, 32])  # 32: longer than the whole sequence
def test_generate_with_cache_equals_argmax_loop(interval, window):
    model = memory_model(seed=3, sliding_window=window)
    ids = torch.randint(0, 97, (1, 11))
    with torch.no_grad():
        expected = greedy_reference(model, ids, 9, interval)
        got = model.generate(ids, max_new_tokens=9, do_sample=False, memory_update_interval=interval,
                             pad_token_id=0)
    assert got.tolist() == expected.tolist()


def test_save_and_auto_load_round_trip(tmp_path):
    model = memory_model(memory_write="both", memory_layers=[1])
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LM2ForCausalLM) and loaded.config.memory_layers == [1]
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
    ids = torch.randint(0, 97, (2, 15))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)


@pytest.mark.parametrize("variant", MEMORY_VARIANTS)
def test_every_memory_parameter_gets_a_gradient(variant):
    model = memory_model(**{"memory_write": "both", **MEMORY_VARIANTS[variant]}).train()
    ids = torch.randint(0, 97, (2, 20))  # 5 chunks of U = 4: writes shape later reads
    model(ids, labels=ids).loss.backward()
    for name, p in model.named_parameters():
        if ".memory." in name:
            assert p.grad is not None and p.grad.abs().max() > 0, name


@pytest.mark.parametrize("keep", [0, 2, 7])
def test_loss_is_next_token_cross_entropy_also_with_logits_to_keep(keep):
    """Reference: log-softmax of the logit at position t scored on the token at t + 1, -100 skipped."""
    model = memory_model()
    ids = torch.randint(0, 97, (2, 12))
    labels = ids.clone()
    labels[0, 4] = -100
    with torch.no_grad():
        full = model(ids).logits
        out = model(ids, labels=labels, logits_to_keep=keep)
    first = 0 if keep == 0 else 12 - keep
    terms = [-torch.log_softmax(full[b, t], -1)[labels[b, t + 1]]
             for b in range(2) for t in range(first, 11) if labels[b, t + 1] != -100]
    torch.testing.assert_close(out.loss, torch.stack(terms).mean())


def test_zero_initialised_read_still_learns():
    """At initialisation only the read projection has a gradient (the read is zero); that is enough to start."""
    torch.manual_seed(0)
    model = LM2ForCausalLM(tiny_config())
    ids = torch.randint(0, 97, (2, 12))
    model(ids, labels=ids).loss.backward()
    assert model.model.layers[0].memory.o_proj.weight.grad.abs().max() > 0


def test_fresh_sequence_starts_from_initial_memory():
    model = memory_model()
    a, b = torch.randint(0, 97, (1, 16)), torch.randint(0, 97, (1, 16))
    with torch.no_grad():
        alone = model(b).logits
        model(a)  # an unrelated sequence before must leave no trace
        again = model(b).logits
        state = model(b[:, :3], use_cache=True).past_key_values  # 3 < U: no write yet
    assert torch.equal(alone, again)
    bank = state.layers[0].memory.memory[0]
    torch.testing.assert_close(bank, model.model.layers[0].memory.initial_memory)


def test_batch_rows_with_padding_match_unpadded_rows():
    model = memory_model(memory_update_interval=3)
    ids = torch.randint(1, 97, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 7:] = 0  # right padding on row 1
    with torch.no_grad():
        batched = model(ids, attention_mask=mask).logits
        row1 = model(ids[1:, :7]).logits
    torch.testing.assert_close(batched[1, :7], row1[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("field,value,expected", [
    ("memory_slots", 0, "memory_slots=0"),
    ("memory_heads", 5, "must divide hidden_size"),
    ("memory_layers", 9, "between 0 and num_hidden_layers"),
    ("memory_layers", [0, 0], "distinct block indices"),
    ("memory_layers", "all", "give an int"),
    ("memory_update_interval", -1, "positive integer"),
    ("memory_write", "gru", "choose one of"),
    ("memory_update", "add", "choose one of"),
    ("memory_write_gate", "slot", "choose one of"),
    ("memory_write_threshold", 1.0, "strength in \\(0, 1\\)"),
    ("memory_write_threshold", -0.1, "strength in \\(0, 1\\)"),
    ("memory_write_threshold", 0.1, "needs memory_write_gate='token'"),
    ("memory_write_threshold_gradient", "soft", "choose one of"),
    ("memory_read_scale", 0, "positive number"),
    ("memory_read_scale", "sharp", "positive number"),
    ("memory_slot_keys", "yes", "true or false"),
    ("memory_write_lookback_init", -1.0, "number >= 0"),
    ("memory_write_lookback_init", float("nan"), "number >= 0"),
    ("memory_write_lookback_init", True, "number >= 0"),
    ("memory_write_lookback_learn_bias", "no", "true or false"),
    ("sliding_window", 0, "sliding_window=0"),
    ("num_key_value_heads", 3, "grouped-query"),
])
def test_invalid_config_values_raise_clear_errors(field, value, expected):
    with pytest.raises(ValueError, match=expected) as err:
        LM2Config.from_preset("tiny", **{field: value})
    assert field in str(err.value)


@pytest.mark.parametrize("slope", [0.0, 1.0, 3.0])
def test_lookback_init_sets_the_starting_distance_preference(slope):
    """b_l = -slope * (l - 1) at initialisation: the share of the choice on the token before is
    1 / sum_l exp(-slope (l - 1)), e.g. 1/L for a uniform start (slope 0) and ~0.95 for slope 3."""
    model = LM2ForCausalLM(tiny_config(memory_write_address="lookback", memory_write_lookback=4,
                                       memory_write_lookback_init=slope))
    for layer in model.model.layers:
        torch.testing.assert_close(layer.memory.lookback_bias.detach(), torch.tensor([0.0, -slope, -2 * slope,
                                                                                       -3 * slope]))
    share = torch.softmax(model.model.layers[0].memory.lookback_bias.detach(), 0)[0]
    assert float(share) == pytest.approx(1 / sum(math.exp(-slope * k) for k in range(4)))
    reloaded = LM2Config.from_dict(model.config.to_dict())
    assert reloaded.memory_write_lookback_init == slope  # saved with the model


def test_a_fixed_lookback_bias_stays_at_its_start_and_is_saved(tmp_path):
    """memory_write_lookback_learn_bias false: the distance preference is a buffer (no gradient, not in the
    optimizer's parameters) kept at its start, while the key score still learns; save/load keeps it."""
    model = LM2ForCausalLM(tiny_config(memory_write_address="lookback", memory_write_lookback=4,
                                       memory_write_lookback_init=2.0, memory_write_lookback_learn_bias=False))
    randomize_memory(model)  # a non-zero read path, so the write address gets a gradient at all
    mem = model.model.layers[0].memory
    assert "lookback_bias" not in dict(mem.named_parameters()) and "lookback_bias" in mem.state_dict()
    torch.testing.assert_close(mem.lookback_bias, torch.tensor([0.0, -2.0, -4.0, -6.0]))
    ids = torch.randint(1, 97, (2, 24))
    model(ids, labels=ids).loss.backward()
    assert mem.lookback_score.weight.grad is not None and mem.lookback_score.weight.grad.abs().sum() > 0
    model.save_pretrained(tmp_path)
    again = LM2ForCausalLM.from_pretrained(tmp_path)
    torch.testing.assert_close(again.model.layers[0].memory.lookback_bias, torch.tensor([0.0, -2.0, -4.0, -6.0]))
    assert again.config.memory_write_lookback_learn_bias is False


def test_unknown_preset_and_paper_preset():
    with pytest.raises(ValueError, match="unknown LM2 preset"):
        LM2Config.from_preset("huge")
    cfg = LM2Config.from_preset("lm2-1.7b")
    assert cfg.memory_layer_indices() == list(range(16)) and cfg.memory_slots == 2048


def test_paper_preset_parameter_count():
    """The paper: Llama-3.2-1B (1.24B) + memory ~0.5B = 'LM2-1.7B'. Counted on the meta device."""
    with torch.device("meta"):
        model = LM2ForCausalLM(LM2Config.from_preset("lm2-1.7b"))
    total = sum(p.numel() for p in model.parameters())
    memory = sum(p.numel() for n, p in model.named_parameters() if ".memory." in n)
    assert 1.6e9 < total < 1.8e9 and 0.45e9 < memory < 0.6e9, (total, memory)


@pytest.mark.parametrize("window", [None, 4, 16, 64])
def test_token_by_token_decoding_equals_full_forward(window):
    """Incremental decoding (one token per call, the state carried) gives the full forward's logits at every
    position, also while the sequence is shorter than the window and as it grows past it."""
    model = memory_model(seed=4, sliding_window=window, memory_update_interval=3)
    ids = torch.randint(0, 97, (2, 40))
    with torch.no_grad():
        full = model(ids).logits
        cache, steps = None, []
        for i in range(40):
            out = model(ids[:, i : i + 1], cache=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=2e-5, rtol=0)


@pytest.mark.parametrize("window", [None, 4])
def test_attention_conv_equals_a_reference_written_from_the_formula(window):
    """attention_conv (width w): q'_j = sum_(i<w) c_i * q_(j-i) per channel (zero before the start), the same for
    keys and values, then rotary on q' and k' and causal windowed softmax attention, written with loops (no
    scaled_dot_product_attention, no cache). Also: streaming the input in pieces through one cache gives the
    same output."""
    from lm2.cache import LayerCache
    from lm2.modeling_lm2 import LM2Attention, LM2Rotary, apply_rotary

    torch.manual_seed(0)
    width, t = 3, 9
    cfg = tiny_config(attention_conv=width, memory_layers=0, sliding_window=window)
    attn = LM2Attention(cfg)
    with torch.no_grad():
        attn.qkv_conv.copy_(torch.randn_like(attn.qkv_conv))
    x = torch.randn(2, t, 32)
    cos, sin = LM2Rotary(cfg)(0, t, torch.float32)
    h, kvh, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    with torch.no_grad():
        out, _ = attn(x, cos, sin, LayerCache(), None)
        cache, pieces = LayerCache(), []
        for lo, hi in ((0, 2), (2, 3), (3, 9)):
            piece, cache = attn(x[:, lo:hi], cos[lo:hi], sin[lo:hi], cache, None)
            pieces.append(piece)

        def conv(y, first):  # y: (B, T, C) projections; the conv weights of channels first..first + C
            c = attn.qkv_conv[:, first : first + y.shape[-1]]
            return torch.stack([sum(c[i] * y[:, j - i] for i in range(width) if j - i >= 0) for j in range(t)], 1)

        qc, kc = h * dh, kvh * dh
        q = conv(attn.q_proj(x), 0).view(2, t, h, dh).transpose(1, 2)
        k = conv(attn.k_proj(x), qc).view(2, t, kvh, dh).transpose(1, 2)
        v = conv(attn.v_proj(x), qc + kc).view(2, t, kvh, dh).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        ref = torch.zeros(2, h, t, dh)
        for hh in range(h):
            g = hh // (h // kvh)
            for i in range(t):
                seen = [j for j in range(i + 1) if window is None or i - j < window]
                scores = torch.stack([(q[:, hh, i] * k[:, g, j]).sum(-1) for j in seen], -1) / dh ** 0.5
                ref[:, hh, i] = (scores.softmax(-1).unsqueeze(-1) * torch.stack([v[:, g, j] for j in seen], 1)).sum(1)
        ref = attn.o_proj(ref.transpose(1, 2).reshape(2, t, -1))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(pieces, 1), out, atol=1e-5, rtol=0)


def test_attention_conv_starts_as_llama_attention():
    """At initialisation the convolution is the identity: the model's logits equal the same weights without it."""
    torch.manual_seed(0)
    with_conv = LM2ForCausalLM(tiny_config(attention_conv=4, memory_layers=0)).eval()
    plain = LM2ForCausalLM(tiny_config(memory_layers=0)).eval()
    plain.load_state_dict({k: v for k, v in with_conv.state_dict().items() if "qkv_conv" not in k})
    ids = torch.randint(0, 97, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(with_conv(ids).logits, plain(ids).logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("value", [1, -2, 2.5, True])
def test_attention_conv_rejects_bad_widths(value):
    with pytest.raises(ValueError, match="attention_conv"):
        tiny_config(attention_conv=value)


@pytest.mark.parametrize("window", [None, 4])
def test_smeared_keys_equal_a_reference_written_from_the_formula(window):
    """attention_key_shift: k'_j = a k_j + (1 - a) k_(j-1) (k_(-1) = 0), a = sigmoid per kv head, then causal windowed
    softmax attention, written with loops and explicit masks (no scaled_dot_product_attention, no cache)."""
    from lm2.cache import LayerCache
    from lm2.modeling_lm2 import LM2Attention, LM2Rotary, apply_rotary

    torch.manual_seed(0)
    cfg = tiny_config(attention_key_shift=True, memory_layers=0, sliding_window=window)
    attn = LM2Attention(cfg)
    with torch.no_grad():
        attn.key_shift.copy_(torch.tensor([1.5, -0.7]))  # two kv heads, each its own mix
    x = torch.randn(2, 9, 32)
    cos, sin = LM2Rotary(cfg)(0, 9, torch.float32)
    with torch.no_grad():
        out, _ = attn(x, cos, sin, LayerCache(), None)
        h, kvh, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = apply_rotary(attn.q_proj(x).view(2, 9, h, dh).transpose(1, 2), cos, sin)
        k = apply_rotary(attn.k_proj(x).view(2, 9, kvh, dh).transpose(1, 2), cos, sin)
        v = attn.v_proj(x).view(2, 9, kvh, dh).transpose(1, 2)
        ref = torch.zeros(2, h, 9, dh)
        for hh in range(h):
            g = hh // (h // kvh)  # the kv head this query head shares
            a = torch.sigmoid(attn.key_shift[g])
            smeared = [a * k[:, g, j] + (1 - a) * (k[:, g, j - 1] if j else 0) for j in range(9)]
            for i in range(9):
                seen = [j for j in range(i + 1) if window is None or i - j < window]
                scores = torch.stack([(q[:, hh, i] * smeared[j]).sum(-1) for j in seen], -1) / dh ** 0.5
                ref[:, hh, i] = (scores.softmax(-1).unsqueeze(-1) * torch.stack([v[:, g, j] for j in seen], 1)).sum(1)
        ref = attn.o_proj(ref.transpose(1, 2).reshape(2, 9, -1))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def _same(a, b) -> bool:
    """Equal values, through the state's dataclasses (LayerCache, MemoryState, ChunkStats)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name))
                                            for f in dataclasses.fields(a))
    return a == b


def test_blocks_return_their_new_state_and_leave_the_given_one_unchanged():
    """Functional blocks (FSDP may hand a block a copy of its state): a call returns a new LayerCache and leaves
    the one it was given, and the model the LM2Cache it was given, exactly as they were. The state carries
    every field (window keys, padding mask, smeared key, convolution inputs, memory with an unfinished chunk)."""
    model = memory_model(sliding_window=4, memory_write_shift=True, **MEMORY_VARIANTS["attention_conv"],
                         **MEMORY_VARIANTS["key_shift"])
    ids, mask = torch.randint(0, 97, (2, 11)), torch.ones(2, 11, dtype=torch.long)
    mask[1, :2] = 0
    with torch.no_grad():
        state = model(ids[:, :6], attention_mask=mask[:, :6]).past_key_values  # 6 tokens: a chunk of U=4 is open
        given, before = state.layers[0], copy.deepcopy(state)
        fields = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)}
        assert all(v is not None for v in fields.values())
        x = model.model.embed_tokens(ids[:, 6:])
        cos, sin = model.model.rotary_emb(state.offset, 5, x.dtype)
        _, new, _ = model.model.layers[0](x, cos, sin, given, state.offset, state.memory_update_interval,
                                          mask[:, 6:].bool())
        assert all(getattr(given, name) is value for name, value in fields.items())
        assert _same(given, before.layers[0])
        assert new is not given and not _same(new, given)

        after = model(ids[:, 6:], attention_mask=mask, past_key_values=state).past_key_values
        assert after is not state and after.offset == 11
        assert state.offset == before.offset and all(_same(a, b) for a, b in zip(state.layers, before.layers))
