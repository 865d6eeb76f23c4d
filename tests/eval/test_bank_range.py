"""scripts/bank_range.py: how alike a bank's slots are, checked against banks whose answer is known and against a
slow pairwise reference."""

from __future__ import annotations

import pytest
import torch

from helpers import load_script


def reference(memory: torch.Tensor) -> float:
    """The mean of F.cosine_similarity over every ordered pair of two different slots, one pair at a time."""
    slots = memory.shape[0]
    pairs = [float(torch.nn.functional.cosine_similarity(memory[i].flatten(), memory[j].flatten(), dim=0))
             for i in range(slots) for j in range(slots) if i != j]
    return sum(pairs) / len(pairs)


def test_slots_that_hold_one_direction_are_alike_and_orthogonal_ones_are_not():
    script = load_script("bank_range")
    same = torch.randn(1, 16).repeat(8, 1) * torch.arange(1, 9).unsqueeze(1)  # one direction, eight lengths
    assert script.slot_similarity(same) == pytest.approx(1.0, abs=1e-6)
    assert script.slot_similarity(torch.eye(8, 16)) == pytest.approx(0.0, abs=1e-7)
    opposite = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    assert script.slot_similarity(opposite) == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("shape", [(4, 8), (32, 128), (6, 2, 5)])
def test_slot_similarity_matches_the_pairwise_reference(shape):
    script = load_script("bank_range")
    generator = torch.Generator().manual_seed(sum(shape))
    memory = torch.randn(*shape, generator=generator) + 0.3  # a shared offset: the pairs are not all near 0
    assert script.slot_similarity(memory) == pytest.approx(reference(memory), abs=1e-5)


def test_a_bank_of_one_slot_is_refused_with_the_reason():
    script = load_script("bank_range")
    with pytest.raises(ValueError, match="at least 2 slots; this one has 1"):
        script.slot_similarity(torch.randn(1, 8))
