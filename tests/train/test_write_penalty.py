"""train.write_penalty: the mean per-token write strength added to the loss (over real tokens and memory blocks)."""

from __future__ import annotations

import pytest
import torch

from helpers import memory_model

from lm2.train import loop
from lm2.train.loop import SegmentedLM


def _gated(seed: int = 0):
    return memory_model(seed=seed, memory_write_gate="token", memory_update="replace", sliding_window=4).train()


def _batch(length: int = 24, rows: int = 2, seed: int = 0):
    ids = torch.randint(0, 97, (rows, length), generator=torch.Generator().manual_seed(seed))
    return ids, ids.clone()


def test_the_penalty_is_the_mean_strength_times_the_labelled_tokens():
    """With each write gate's weight at zero and bias b_l, every token writes with sigmoid(b_l): the penalty term is
    write_penalty * mean_l sigmoid(b_l) per labelled token, and the language-model part is unchanged."""
    model = _gated()
    biases = [-1.5, 0.7]
    gates = [layer.memory.write_gate for layer in model.model.layers if layer.memory is not None]
    assert len(gates) == len(biases)
    with torch.no_grad():
        for gate, b in zip(gates, biases):
            gate.weight.zero_()
            gate.bias.fill_(b)
    ids, labels = _batch()
    plain, count = SegmentedLM(model, 8)(ids, labels=labels)
    runner = SegmentedLM(model, 8, write_penalty=0.3)
    penalised, count2 = runner(ids, labels=labels)
    expected = sum(torch.sigmoid(torch.tensor(b)).item() for b in biases) / len(biases)
    assert count == count2
    assert runner.strength == pytest.approx(expected, rel=1e-6)
    assert (penalised - plain).item() == pytest.approx(0.3 * expected * count.item(), rel=1e-5)
    assert runner.lm_loss_sum == plain.item()  # what the trainer logs: the language-model part alone


def test_padding_does_not_count():
    """A right-padded row contributes only its real tokens: the batch's mean strength is the token-weighted mean
    of each row run alone without padding (causal, so padding after a token cannot change its strength)."""
    model = _gated(seed=3)
    runner = SegmentedLM(model, 8, write_penalty=1.0)
    ids, labels = _batch(length=24)
    real = [24, 13]
    mask = torch.ones_like(ids)
    mask[1, real[1]:] = 0
    labels[1, real[1]:] = -100
    runner(ids, attention_mask=mask, labels=labels)
    batch_mean = runner.strength
    alone = []
    for row, n in enumerate(real):
        runner(ids[row:row + 1, :n], labels=labels[row:row + 1, :n])
        alone.append(runner.strength)
    expected = sum(m * n for m, n in zip(alone, real)) / sum(real)
    assert batch_mean == pytest.approx(expected, rel=1e-5)
    assert abs(alone[0] - alone[1]) > 1e-4  # the rows write differently, so a wrong weighting would show


def test_the_penalty_pushes_write_strengths_down_and_is_off_in_evaluation():
    model = _gated()
    ids, labels = _batch()
    runner = SegmentedLM(model, 8, write_penalty=5.0)
    loss, _ = runner(ids, labels=labels)
    loss.backward()
    gate = model.model.layers[0].memory.write_gate
    plain_model = _gated()
    plain, _ = SegmentedLM(plain_model, 8)(ids, labels=labels)
    plain.backward()
    # d(penalty)/d(bias) = penalty * mean sigmoid' > 0: the penalised gradient on the gate's bias is larger
    assert gate.bias.grad.item() > plain_model.model.layers[0].memory.write_gate.bias.grad.item()
    model.eval()
    with torch.no_grad():
        evaluated, _ = runner(ids, labels=labels)
    torch.testing.assert_close(evaluated, plain.detach(), rtol=1e-6, atol=1e-6)


def test_a_model_without_write_strengths_is_refused():
    with pytest.raises(ValueError, match="memory_write_gate: token"):
        SegmentedLM(memory_model(), 8, write_penalty=0.1)


def test_a_negative_penalty_is_refused(lm_config):
    with pytest.raises(ValueError, match="train.write_penalty=-0.1 is invalid"):
        lm_config(train={"write_penalty": -0.1})


def test_vanilla_trains_the_same_with_the_penalty(lm_config):
    """No memory, no writes: a recipe may set the field for every kind, and vanilla's step is exactly unchanged."""
    plain = loop.setup(lm_config(model={"kind": "vanilla"}))
    penalised = loop.setup(lm_config(model={"kind": "vanilla"}, train={"write_penalty": 1.0}))
    a, b = loop.train_step(plain), loop.train_step(penalised)
    assert a["loss"] == b["loss"] and "write_strength" not in b
    assert all(torch.equal(p, q) for p, q in zip(plain.model.parameters(), penalised.model.parameters()))


def test_train_step_logs_the_language_model_loss_and_the_strength(lm_config):
    """The same first step with and without the penalty: the logged loss is the same (the penalty stays out of it),
    write_strength is logged, and the update differs (the penalty moves the gates)."""
    gate = {"memory_write_gate": "token", "memory_update": "replace"}

    def config(**train):
        base = lm_config()
        return lm_config(model={"config": {**base.model.config, **gate}}, train={**train})

    plain, penalised = loop.setup(config()), loop.setup(config(write_penalty=0.5))
    a, b = loop.train_step(plain), loop.train_step(penalised)
    assert b["loss"] == a["loss"]
    assert "write_strength" not in a and 0 < b["write_strength"] < 1
    gate_a = plain.model.model.layers[0].memory.write_gate.bias
    gate_b = penalised.model.model.layers[0].memory.write_gate.bias
    assert not torch.equal(gate_a, gate_b)
