"""The training loop: it learns, resumes exactly, truncates BPTT where told, and fails cleanly."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lm2 import rmt
from lm2.train import checkpoint as ckpt
from lm2.train import loop
from lm2.train.loop import SegmentedLM, TrainingDiverged, train


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_loss_falls_on_tiny_overfit(lm_config):
    cfg = lm_config(train={"steps": 40, "lr": 1e-2, "warmup_steps": 2})
    run = loop.setup(cfg)
    batches = run.stream.micro_batches(0)
    run.stream.micro_batches = lambda step: batches  # the same 4 blocks every step: memorise them
    losses = []
    while run.step < 40:
        losses.append(loop.train_step(run)["loss"])
    assert losses[-1] < 0.5 * losses[0], losses[::8]


def test_killed_and_resumed_run_ends_identical(lm_config, tmp_path, monkeypatch):
    full = train(lm_config(out_dir=str(tmp_path / "full")), progress=False)
    cfg = lm_config(out_dir=str(tmp_path / "killed"))
    real_step = loop.train_step

    def dying_step(run):
        if run.step == 4:  # after the checkpoint of step 4
            raise KeyboardInterrupt
        return real_step(run)

    monkeypatch.setattr(loop, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(loop, "train_step", real_step)
    assert ckpt.latest(tmp_path / "killed").name == "ckpt-000004"
    resumed = train(cfg, resume=True, progress=False)
    assert resumed.step == full.step == 6
    a, b = weights(tmp_path / "full" / "ckpt-000006"), weights(tmp_path / "killed" / "ckpt-000006")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    losses = lambda run: [r["loss"] for r in run.history if r["kind"] == "train"]  # noqa: E731
    assert losses(resumed) == losses(full)[4:]
    # the token count (the budget RESULTS.md reports) carries over the resume: every batch of this config is full
    seen = lambda run: [r["tokens_seen"] for r in run.history if r["kind"] == "train"]  # noqa: E731
    per_step = full.cfg.train.batch_size * full.cfg.data.block_size
    assert seen(full) == [per_step * k for k in range(1, 7)] and seen(resumed) == seen(full)[4:]
    assert resumed.tokens == full.tokens == 6 * per_step and isinstance(full.tokens, int) and full.seconds > 0


def test_stop_after_keeps_the_schedule_and_resume_finishes_the_same_run(lm_config, tmp_path):
    """train.stop_after=3 of 6 steps: a checkpoint at step 3 with the full run's learning rates so far, and
    --resume without stop_after ends with the full run's weights."""
    full = train(lm_config(out_dir=str(tmp_path / "full")), progress=False)
    stopped = train(lm_config(out_dir=str(tmp_path / "stopped"), train={"stop_after": 3}), progress=False)
    assert stopped.step == 3 and ckpt.latest(tmp_path / "stopped").name == "ckpt-000003"
    lrs = lambda run: [r["lr"] for r in run.history if r["kind"] == "train"]  # noqa: E731
    assert lrs(stopped) == lrs(full)[:3] and lrs(full)[2] != lrs(full)[-1]
    resumed = train(lm_config(out_dir=str(tmp_path / "stopped")), resume=True, progress=False)
    assert resumed.step == 6
    a, b = weights(tmp_path / "full" / "ckpt-000006"), weights(tmp_path / "stopped" / "ckpt-000006")
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_stop_after_past_the_end_is_refused(lm_config):
    with pytest.raises(ValueError, match=r"train.stop_after=7 is past the run's last step \(6\)"):
        lm_config(train={"stop_after": 7})


def test_kill_during_save_leaves_last_complete_checkpoint(lm_config, tmp_path, monkeypatch):
    cfg = lm_config()
    real_replace = ckpt.os.replace

    def crash(src, dst):
        if str(dst).endswith("ckpt-000004"):
            raise KeyboardInterrupt  # the process dies between writing the files and renaming the folder
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    out = tmp_path / "run"
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["ckpt-000002"]
    assert any(p.name.startswith(".tmp-") for p in out.iterdir())  # the half-written one, never picked up
    resumed = train(cfg, resume=True, progress=False)
    assert resumed.step == 6 and ckpt.latest(out).name == "ckpt-000006"
    assert not any(p.name.startswith(".tmp-") for p in out.iterdir())


def test_nan_loss_stops_with_step_and_keeps_checkpoint(lm_config, tmp_path, monkeypatch):
    real_forward = SegmentedLM.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        loss, n = real_forward(self, *args, **kwargs)
        calls["n"] += 1
        return (loss * float("nan") if calls["n"] == 3 and self.training else loss), n

    monkeypatch.setattr(SegmentedLM, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"step 3: the loss is nan.*ckpt-000002"):
        train(lm_config(), progress=False)
    assert ckpt.latest(tmp_path / "run").name == "ckpt-000002"


def test_incompatible_checkpoint_is_refused(lm_config, tmp_path):
    train(lm_config(train={"steps": 2}), progress=False)
    wider = lm_config(train={"steps": 4}, model={"config": {"hidden_size": 64, "memory_slots": 4, "memory_heads": 2}})
    with pytest.raises(ValueError, match="incompatible.*model.config"):
        train(wider, resume=True, progress=False)


def test_resume_without_checkpoint_is_a_clear_error(lm_config):
    with pytest.raises(ValueError, match="no complete checkpoint"):
        train(lm_config(), resume=True, progress=False)


@pytest.mark.parametrize("bptt, reaches_first_segment", [(0, True), (3, True), (2, False), (1, False)])
def test_truncated_bptt_stops_gradient_at_the_configured_segment(bptt, reaches_first_segment):
    """Loss only on segment 3 of 3. The initial memory bank is read by segment 1 only, so its gradient comes
    only through the state carried from segment 1: it vanishes when BPTT is cut before segment 3."""
    from helpers import memory_model

    model = memory_model(sliding_window=4, memory_update_interval=4).train()
    runner = SegmentedLM(model, segment_length=8, bptt_segments=bptt)
    ids = torch.randint(0, 97, (2, 24), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[:, 17:] = ids[:, 17:]  # targets only inside the last segment
    loss, count = runner(ids, labels=labels)
    loss.backward()
    grad = model.model.layers[0].memory.initial_memory.grad
    assert count == 2 * 7  # positions 16..22 of both rows predict labels 17..23
    assert (grad is not None and grad.abs().sum() > 0) == reaches_first_segment


def test_freeze_backbone_trains_only_memory(lm_config):
    run = loop.setup(lm_config(model={"freeze_backbone": True}))
    trainable = [n for n, p in run.model.named_parameters() if p.requires_grad]
    assert trainable and all(".memory." in n for n in trainable)
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    loop.train_step(run)
    changed = {n for n, p in run.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".memory." in n for n in changed)


def test_memory_after_holds_the_memory_at_its_initialisation_until_that_step(lm_config):
    """train.memory_after=2: steps 1-2 move the backbone only (with weight decay on, so a decayed-but-not-trained
    memory would show) and leave the model equal to its backbone; step 3 moves the memory too."""
    run = loop.setup(lm_config(train={"memory_after": 2, "weight_decay": 0.1, "warmup_steps": 1}))
    start = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    ids = torch.randint(0, run.model.config.vocab_size, (2, 40))
    backbone_only = loop.setup(lm_config(model={"kind": "vanilla"})).model
    for _ in range(2):
        loop.train_step(run)
    changed = {n for n, p in run.model.named_parameters() if not torch.equal(p, start[n])}
    assert changed and not any(".memory." in n for n in changed)
    backbone_only.load_state_dict({n: p for n, p in run.model.state_dict().items() if ".memory." not in n})
    with torch.no_grad():
        torch.testing.assert_close(run.model(ids).logits, backbone_only(ids).logits, atol=1e-5, rtol=0)
    loop.train_step(run)
    assert any(".memory." in n and not torch.equal(p, start[n]) for n, p in run.model.named_parameters())


def test_backbone_lr_moves_the_backbone_at_its_own_rate(lm_config):
    """train.backbone_lr: the memory at train.lr, every other parameter at backbone_lr (Adam's first step moves
    each weight by about the lr), each parameter in exactly one group."""
    lr, backbone_lr = 3e-3, 3e-5
    run = loop.setup(lm_config(train={"lr": lr, "backbone_lr": backbone_lr, "warmup_steps": 1, "weight_decay": 0.0}))
    grouped = [id(p) for g in run.optimizer.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in run.model.parameters()) and len(set(grouped)) == len(grouped)
    assert run.optimizer.param_groups[0]["lr"] == lr
    before = {n: p.detach().clone() for n, p in run.model.named_parameters()}
    loop.train_step(run)
    moved = {n: float((p.detach() - before[n]).abs().max()) for n, p in run.model.named_parameters()}
    backbone = max(v for n, v in moved.items() if ".memory." not in n)
    memory = max(v for n, v in moved.items() if ".memory." in n)
    assert 0 < backbone <= 1.01 * backbone_lr
    assert memory > 10 * backbone_lr


def test_eval_at_start_logs_the_untrained_model_as_step_0(lm_config):
    """eval.at_start: a step-0 validation loss, equal to the freshly built model's (same seed), before training."""
    cfg = lm_config(train={"steps": 2}, eval={"interval": 0, "at_start": True})
    fresh = loop.setup(cfg)
    batches = loop.validation_batches(cfg, fresh.tokenizer, fresh.micro)
    expected = loop.evaluate(SegmentedLM(fresh.model, cfg.data.segment_length), fresh.tokenizer, cfg, batches,
                             torch.device("cpu"))["val_loss"]
    evals = [r for r in train(cfg, progress=False).history if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 2]
    assert evals[0]["val_loss"] == pytest.approx(expected, rel=1e-6) and evals[1]["val_loss"] != evals[0]["val_loss"]


def test_validation_set_does_not_depend_on_the_micro_batch(lm_config):
    """eval.val_batches counts global batches: micro-batches of 1, 2 or 4 split the same held-out sequences (a
    smaller micro-batch to fit memory once halved the set and made two runs' losses incomparable)."""
    cfg = lm_config(eval={"val_batches": 2})
    tokenizer, sets = loop.setup(cfg).tokenizer, {}
    for micro in (1, 2, 4):
        batches = loop.validation_batches(cfg, tokenizer, micro)
        assert {len(b["input_ids"]) for b in batches} == {micro}
        sets[micro] = torch.cat([b["input_ids"] for b in batches])
    assert len(sets[4]) == 2 * cfg.train.batch_size
    assert torch.equal(sets[1], sets[4]) and torch.equal(sets[2], sets[4])


def test_vanilla_has_no_memory_and_same_window(lm_config):
    cfg = lm_config(model={"kind": "vanilla"})
    model = loop.build_model(cfg, vocab_size=300)
    assert not model.config.has_memory and model.config.sliding_window == 16


def test_rmt_builds_when_available(lm_config):
    pytest.importorskip("lm2.rmt")
    model = loop.build_model(lm_config(model={"kind": "rmt"}), vocab_size=300)
    out = SegmentedLM(model, 16, 1)(torch.randint(0, 300, (2, 40)), labels=torch.randint(0, 300, (2, 40)))
    assert torch.isfinite(out[0])


def test_rmt_from_a_checkpoint_takes_its_backbone_under_fresh_memory_tokens(lm_config, tmp_path):
    # An LM2 checkpoint (memory blocks and all): RMT keeps every backbone weight and drops the memory blocks.
    source = loop.build_model(lm_config(), vocab_size=300)
    source.save_pretrained(tmp_path / "source")
    model = loop.build_model(lm_config(model={"kind": "rmt", "init_from": str(tmp_path / "source"),
                                              "config": {**lm_config().model.config, "memory_layers": 2}}))
    assert isinstance(model, rmt.RMTForCausalLM) and not model.config.has_memory
    kept = {k: v for k, v in source.state_dict().items() if ".memory." not in k}
    theirs = model.state_dict()
    assert set(theirs) == set(kept) | {"memory_embeddings"}
    assert all(torch.equal(theirs[k], v) for k, v in kept.items())
    assert model.config.rmt_segment_length == 16 and model.memory_embeddings.std() > 0

    # An RMT checkpoint continues as it was saved, memory tokens included, and gets no memory blocks from a config
    # written for LM2 (memory_layers in model.config).
    model.save_pretrained(tmp_path / "rmt")
    again = loop.build_model(lm_config(model={"kind": "rmt", "init_from": str(tmp_path / "rmt"),
                                              "config": {**lm_config().model.config, "memory_layers": 2}}))
    assert not again.config.has_memory and set(again.state_dict()) == set(model.state_dict())
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())


def test_babilong_run_trains_on_the_token_budget_counted_before_it(lm_config, tmp_path, capsys):
    """BABILong fine-tuning through the length curriculum (variable lengths, so padding): the trainer's token
    count equals `lm2 train --count-tokens`, which reads the same stream without a model."""
    from lm2.cli import main
    from lm2.train.config import save_config
    from lm2.train.data import budget_tokens, get_tokenizer

    cfg = lm_config(data={"task": "babilong", "babi_tasks": ["qa1", "qa2"], "segment_length": 64,
                          "bptt_segments": 0, "curriculum": [{"steps": 2, "lengths": ["0k"]},
                                                             {"steps": 1, "lengths": ["0k", "1k"]}]},
                    train={"steps": 0}, eval={"interval": 3, "samples": 2, "lengths": ["0k"], "max_new_tokens": 2})
    run = train(cfg, progress=False)
    batches = [run.stream.micro_batches(step)[0] for step in range(3)]
    assert max(b["input_ids"].shape[1] for b in batches[:2]) < 0.3 * batches[2]["input_ids"].shape[1]  # 1k joined
    assert int(batches[2]["attention_mask"].sum()) < batches[2]["attention_mask"].numel()  # so there is padding
    padded = [b["attention_mask"].sum().item() for b in batches]
    seen = [r["tokens_seen"] for r in run.history if r["kind"] == "train"]
    assert seen == [sum(padded[: k + 1]) for k in range(3)]
    assert run.tokens == seen[-1] == budget_tokens(cfg, get_tokenizer(cfg.data.tokenizer))
    config = tmp_path / "babilong.yaml"
    save_config(cfg, config)
    count_dir = tmp_path / "count"
    assert main(["train", str(config), "--count-tokens", "--no-progress", "--out_dir", str(count_dir)]) == 0
    assert f"{run.tokens:,} tokens in 3 steps of 4 sequences" in capsys.readouterr().out
    assert not count_dir.exists()  # counting trains and writes nothing


def test_babilong_validation_never_draws_test_stories():
    """Choosing the best checkpoint looks at train-split stories only: every validation sample's story belongs
    to the train split (by the split's own hash of its first two statements), with a seed that training's
    draws (below 2**31) never use."""
    from lm2.data.babi import story_split
    from lm2.train.data import BABILONG_VALIDATION_SEED, babilong_validation_samples

    assert BABILONG_VALIDATION_SEED >= 2**31
    for task in ("qa1", "qa2"):
        samples = babilong_validation_samples(task, "0k", 30)
        assert len(samples) == 30
        assert {story_split(task, s.facts[:2]) for s in samples} == {"train"}


def test_lm2_from_a_checkpoint_without_memory_adds_the_blocks_the_config_asks_for(lm_config, tmp_path):
    """model.kind lm2 from a vanilla checkpoint: memory_layers in model.config adds memory blocks over the kept
    backbone; without it the model would silently have no memory, so that is refused."""
    source = loop.build_model(lm_config(model={"kind": "vanilla"}), vocab_size=300)
    source.save_pretrained(tmp_path / "vanilla")
    with pytest.raises(ValueError, match="no memory blocks and the config adds none.*memory_layers"):
        loop.build_model(lm_config(model={"kind": "lm2", "init_from": str(tmp_path / "vanilla")}))
    model = loop.build_model(lm_config(model={"kind": "lm2", "init_from": str(tmp_path / "vanilla"),
                                              "config": {**lm_config().model.config, "memory_layers": 2}}))
    assert model.config.has_memory
    theirs = model.state_dict()
    assert all(torch.equal(theirs[k], v) for k, v in source.state_dict().items())
    explicit = loop.build_model(lm_config(model={"kind": "lm2", "init_from": str(tmp_path / "vanilla"),
                                                 "config": {**lm_config().model.config, "memory_layers": 0}}))
    assert not explicit.config.has_memory  # asked for in so many words: a model without memory, as in RESULTS 2


def test_validation_scores_the_answer_steps_tasks_by_the_label_rule(lm_config, monkeypatch):
    """With data.answer_steps: [qa2] a qa2 answer that names a person before the room ("Mary kitchen") counts
    where the room is the target (BABILong's label rule); qa1, not listed, stays exact match, so the same answer
    never counts there."""
    from lm2.train.data import babilong_validation_samples, get_tokenizer

    cfg = lm_config(data={"task": "babilong", "supervise": "story", "babi_tasks": ["qa1", "qa2"],
                          "answer_steps": ["qa2"], "segment_length": 64, "bptt_segments": 0,
                          "curriculum": [{"steps": 1, "lengths": ["0k"]}]},
                    train={"steps": 0}, eval={"samples": 20, "lengths": ["0k"], "max_new_tokens": 4})
    tokenizer = get_tokenizer(cfg.data.tokenizer)
    written = tokenizer(" Mary kitchen\nJohn garden", add_special_tokens=False)["input_ids"]  # and a line past it
    monkeypatch.setattr(loop, "greedy_streaming", lambda model, prompts, *args, **kwargs: [written for _ in prompts])
    model = loop.build_model(cfg, tokenizer=tokenizer)
    accuracy = loop.babilong_accuracy(model, tokenizer, cfg, torch.device("cpu"))
    expected = sum(s.target == "kitchen" for s in babilong_validation_samples("qa2", "0k", 20)) / 20
    assert 0 < expected < 1
    assert accuracy == {"acc/qa1/0k": 0.0, "acc/qa2/0k": expected}
