"""scripts/write_wear.py: which tokens are facts, and how much of each slot a write keeps, against the update
equations written out by hand."""

from __future__ import annotations

import pytest
import torch

from helpers import char_tokenizer, load_script, memory_model

import lm2.memory as memory_module
from lm2.data.babilong import build_samples, finetune_prompt
from lm2.memory import ChunkStats, LM2Memory


def test_the_fact_mask_covers_exactly_the_fact_sentences():
    """One token per character: the marked characters, read in order, are the story's facts back to back, and a
    token in front of the prompt (a beginning-of-text id) is never marked."""
    script = load_script("write_wear")
    tokenizer = char_tokenizer()
    for sample in build_samples("qa1", "1k", 3, split="test", seed=0):
        prompt = finetune_prompt(sample)
        ids = [0] + list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        mask = script.fact_mask(prompt, list(sample.facts), ids, tokenizer)
        assert not mask[0]
        assert "".join(ch for ch, marked in zip(prompt, mask[1:]) if marked) == "".join(sample.facts)


def test_a_fact_missing_from_the_prompt_is_named():
    script = load_script("write_wear")
    tokenizer = char_tokenizer()
    with pytest.raises(ValueError, match="'Mary went home.' is not in the prompt"):
        script.fact_mask("John is here.", ["Mary went home."], list(range(13)), tokenizer)


@pytest.mark.parametrize("update", ["replace", "gated"])
def test_the_part_a_write_keeps_is_the_update_equations(update):
    """The recorded keep, write(ones) - write(zeros), is 1 - s g_in for the replace update and 1 - s (1 - g_f) for
    eq. (6)'s gated one, with s = 1 - prod_i (1 - w_ij): computed here from the pooled statistics by hand."""
    script = load_script("write_wear")
    model = memory_model(memory_write_gate="token", memory_update=update, memory_write="input")
    block = next(m for m in model.modules() if isinstance(m, LM2Memory))
    generator = torch.Generator().manual_seed(4)
    n, d = block.initial_memory.shape
    weight = torch.rand(1, n, generator=generator) * 3
    stats = ChunkStats(weight=weight, x_sum=torch.randn(1, n, d, generator=generator) * weight.unsqueeze(-1),
                       e_sum=torch.randn(1, n, d, generator=generator),
                       log_keep=-torch.rand(1, n, generator=generator) * 2)
    fused = block.fused_weights()
    with torch.no_grad(), script.WearRecorder(model) as recorder:  # the recorder wraps the module's gated_write
        memory_module.gated_write(torch.randn(1, n, d), stats, fused, "input", update)
        kept = recorder.kept[0][0]
    s = 1 - stats.log_keep.exp()  # (1, N)
    x_bar = stats.x_sum / stats.weight.unsqueeze(-1)
    with torch.no_grad():
        g_in = torch.sigmoid(block.in_gate(x_bar))
        if update == "replace":
            expected = 1 - s.unsqueeze(-1) * g_in
        else:
            e_bar = block.o_proj(stats.e_sum / stats.weight.unsqueeze(-1))
            expected = 1 - s.unsqueeze(-1) * (1 - torch.sigmoid(block.forget_gate(e_bar)))
    torch.testing.assert_close(kept, expected[0], atol=1e-5, rtol=0)
    assert kept.min() < 0.99  # the writes really erase something


def test_recording_changes_nothing_and_a_threshold_above_every_strength_keeps_every_slot():
    """With the recorder on, the logits are the same; one keep per chunk and block is recorded. With every token's
    write strength below memory_write_threshold, every write keeps every slot whole."""
    script = load_script("write_wear")
    ids = torch.randint(0, 97, (1, 24), generator=torch.Generator().manual_seed(5))
    for threshold, fully_kept in ((0.0, False), (0.999, True)):
        model = memory_model(memory_write_gate="token", memory_update="replace", memory_write_threshold=threshold)
        with torch.no_grad():
            plain = model(ids).logits
            with script.WearRecorder(model) as recorder:
                recorded = model(ids).logits
        torch.testing.assert_close(recorded, plain, atol=0, rtol=0)
        assert [len(kept) for kept in recorder.kept] == [24 // model.config.memory_update_interval] * 2
        assert [len(strengths) for strengths in recorder.strengths] == [1, 1]
        kept = torch.stack([torch.stack(k) for k in recorder.kept])
        assert bool((kept == 1).all()) == fully_kept


def test_a_model_without_memory_is_refused():
    script = load_script("write_wear")
    model = memory_model(memory_layers=0)
    with pytest.raises(ValueError, match="no memory blocks"):
        script.WearRecorder(model)


def test_writers_ranks_fact_tokens_by_strength_and_counts_background_writes():
    """Fact tokens seen once are left out of the ranking; background tokens count only at or above the strength."""
    script = load_script("write_wear")
    tokens = [(" kitchen", True, 0.99), (" kitchen", True, 0.97), (".", True, 0.5), (".", True, 0.7),
              (" Mary", True, 0.9), (".", False, 0.2), (".", False, 0.01), (" the", False, 0.06), (" the", False, 0.05),
              (" the", False, 0.049), (" book", False, 0.0)]
    text = script.writers(tokens, at=0.05, k=3)
    assert "' kitchen' 0.980 (2), '.' 0.600 (2);" in text and "Mary" not in text
    assert "background tokens at >= 0.05: 3 of 6, most often ' the' 2, '.' 1" in text
