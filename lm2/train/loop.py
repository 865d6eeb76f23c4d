"""The training loop: segment-recurrent training of LM2 (and its baselines), evaluation, checkpoints.

``train(cfg)`` is the whole thing: ``setup`` builds everything (or restores it from a checkpoint), then one
plain ``while`` loop runs optimizer steps, evaluates and saves. A sequence longer than ``data.segment_length``
is fed segment by segment with the model's state (window KV + memory) carried across; backpropagation runs
through the carried memory and is truncated every ``data.bptt_segments`` segments (``cache.detach()``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm
from transformers import AutoConfig

from lm2 import LM2Config, LM2ForCausalLM, rmt
from lm2.cache import segments
from lm2.cli import set_threads
from lm2.data.babi import check_task
from lm2.data.babilong import finetune_example
from lm2.eval.babilong import clean_answer, greedy_streaming, plan_batches, score
from lm2.eval.recall import recall_accuracy
from lm2.memory import LM2Memory
from lm2.model_facts import padding_multiple
from lm2.outdir import check_writable_dir, hold
from lm2.precision import precision_context
from lm2.pretrained import resolve_pretrained
from lm2.train import checkpoint as ckpt
from lm2.train.checkpoint import TrainingDiverged
from lm2.train.config import TrainConfig, accumulation_steps, save_config
from lm2.train.data import (
    babilong_validation_samples,
    batch_tokens,
    eval_lengths,
    make_stream,
    pad_id,
    recall_validation_samples,
    task_tokenizer,
    validation_batches,
)
from lm2.train.model_card import model_card
from lm2.train.optim import build_optimizer, build_scheduler
from lm2.train.parallel import (
    Dist,
    all_reduce_sum,
    apply_parallelism,
    barrier,
    init_distributed,
    no_sync,
    shutdown,
)
from lm2.viz.curves import read_metrics

# ----------------------------------------------------------------------------- model


def build_model(cfg: TrainConfig, vocab_size: int | None = None, tokenizer=None) -> nn.Module:
    """The one way the trainer builds a model: ``model.kind`` lm2 | vanilla (memory_layers=0, same window) | rmt,
    from a preset (with ``model.config`` fields over it) or from a Llama or lm2 checkpoint (``model.init_from``; RMT
    takes its backbone under fresh memory tokens)."""
    m = cfg.model
    fields = dict(m.config)
    if tokenizer is not None and tokenizer.eos_token_id is not None:
        fields.setdefault("eos_token_id", tokenizer.eos_token_id)
        fields.setdefault("pad_token_id", pad_id(tokenizer))
    rmt_fields = dict(m.rmt)
    # RMT's own segments default to the trainer's, so that each training segment is one RMT segment.
    if not any(k in rmt_fields for k in ("rmt_segment_length", "segment_length")):
        rmt_fields["rmt_segment_length"] = cfg.data.segment_length
    if m.kind in ("vanilla", "rmt"):
        fields["memory_layers"] = 0  # RMT's memory is its tokens, not memory blocks
    source = resolve_pretrained(m.init_from) if m.init_from else None
    saved = AutoConfig.from_pretrained(source) if source is not None else None  # what the checkpoint holds
    if source is not None and m.kind == "rmt" and isinstance(saved, rmt.RMTConfig):
        model = rmt.RMTForCausalLM.from_pretrained(source, **fields)  # an RMT run continues as it was saved
    elif source is not None and m.kind == "rmt":
        # The checkpoint's backbone (any memory blocks dropped) under fresh memory tokens.
        backbone = LM2ForCausalLM.from_llama(source, **fields)
        model = rmt.RMTForCausalLM(backbone.config, **rmt_fields)
        missing, unexpected = model.load_state_dict(backbone.state_dict(), strict=False)
        if set(missing) != {"memory_embeddings"} or unexpected:
            raise ValueError(f"model.init_from={m.init_from}: its weights do not fit an RMT backbone "
                             f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})")
    elif source is not None:
        model = LM2ForCausalLM.from_llama(source, **fields)
        from_lm2 = saved.model_type == LM2Config.model_type  # not a plain Llama
        if m.kind == "lm2" and from_lm2 and not model.config.has_memory and "memory_layers" not in fields:
            raise ValueError(f"model.kind=lm2 with model.init_from={m.init_from}: that model has no memory blocks and "
                             f"the config adds none; set model.config.memory_layers (e.g. 4: memory in every block "
                             f"of a 4-block model) or use model.kind=vanilla")
    else:
        if vocab_size is not None:
            fields["vocab_size"] = vocab_size
        config = LM2Config.from_preset(m.preset, **fields)
        if m.kind == "rmt":
            model = rmt.RMTForCausalLM(config, **rmt_fields)
        else:
            model = LM2ForCausalLM(config)
    if m.freeze_backbone:
        for name, param in model.named_parameters():
            param.requires_grad = ".memory." in name
    return model


class SegmentedLM(nn.Module):
    """Runs a causal LM over (B, T) sequences ``segment_length`` tokens at a time, carrying its state, and
    returns the summed cross-entropy of the labelled tokens and their count.

    Targets are shifted over the whole sequence before it is cut (the first token of a segment is predicted
    by the last position of the previous one), which the model's own per-call label shift would lose.
    One forward per micro-batch (all segments) and one backward: DDP wraps this module, not the model.
    """

    def __init__(self, model: nn.Module, segment_length: int, bptt_segments: int = 0, write_penalty: float = 0.0):
        super().__init__()
        self.model, self.segment_length, self.bptt_segments = model, segment_length, bptt_segments
        self.write_penalty = write_penalty
        memories = [m for m in model.modules() if isinstance(m, LM2Memory)]
        self.write_gates = [m.write_gate for m in memories if hasattr(m, "write_gate")]
        # a model without memory blocks (vanilla, RMT) has no writes to penalise: the field changes nothing there,
        # like the memory fields of model.config, so one recipe serves every kind
        if write_penalty and memories and not self.write_gates:
            raise ValueError(f"config field train.write_penalty={write_penalty} needs LM2 memory with a per-token "
                             f"write strength (model.config.memory_write_gate: token); this model's memory has none: "
                             f"set that or drop train.write_penalty")
        # the last penalised forward's language-model loss sum (what the trainer logs) and mean write strength, as
        # floats; lm_loss_sum is None after a forward without the penalty
        self.lm_loss_sum: float | None = None
        self.strength = float("nan")

    def forward(self, input_ids, attention_mask=None, labels=None):
        targets = F.pad(labels[:, 1:], (0, 1), value=-100)  # (B, T): targets[t] = labels[t + 1]
        total = input_ids.new_zeros((), dtype=torch.float)
        penalise = self.write_penalty > 0 and bool(self.write_gates) and self.training and torch.is_grad_enabled()
        self.lm_loss_sum = None
        with write_strengths(self.write_gates if penalise else []) as strengths:
            for start, out in segments(self.model, input_ids, self.segment_length, attention_mask=attention_mask,
                                       logits_to_keep=0, bptt_segments=self.bptt_segments):
                tgt = targets[:, start:start + self.segment_length]
                if (tgt != -100).any():
                    total = total + F.cross_entropy(out.logits.flatten(0, 1).float(), tgt.flatten(),
                                                    ignore_index=-100, reduction="sum")
        count = (targets != -100).sum()
        if penalise:
            mean = mean_strength(strengths, attention_mask, input_ids.shape)
            # added per labelled token, so that the trainer's division by the labelled tokens leaves
            # write_penalty * (mean write strength) on the per-token loss (with several micro-batches, their means
            # weighted by their labelled tokens)
            term = self.write_penalty * mean * count
            self.lm_loss_sum, self.strength = float(total.detach()), float(mean.detach())
            total = total + term
        return total, count


@contextlib.contextmanager
def write_strengths(gates: list[nn.Module]):
    """Collects each memory block's per-token write strength (sigmoid of its write gate, before any cut) while
    the block runs: a list per gate, one (B, T_segment) tensor per segment, in order."""
    collected: list[list[torch.Tensor]] = [[] for _ in gates]
    handles = [gate.register_forward_hook(lambda _m, _i, out, into=into: into.append(torch.sigmoid(out[..., 0])))
               for gate, into in zip(gates, collected)]
    try:
        yield collected
    finally:
        for handle in handles:
            handle.remove()


def mean_strength(strengths: list[list[torch.Tensor]], attention_mask, shape) -> torch.Tensor:
    """The mean write strength over the real tokens (attention_mask) of a batch and over the memory blocks."""
    per_block = [torch.cat(pieces, dim=1) for pieces in strengths]
    mask = torch.ones(shape) if attention_mask is None else attention_mask
    mask = mask.to(per_block[0])
    for s in per_block:
        if s.shape != mask.shape:
            raise RuntimeError(f"the write strengths cover {tuple(s.shape)} tokens, the batch {tuple(mask.shape)}: "
                               "a memory block ran on other tokens than the batch's")
    return sum((s * mask).sum() for s in per_block) / (len(per_block) * mask.sum().clamp(min=1))


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def babilong_accuracy(model, tokenizer, cfg: TrainConfig, device, rank: int = 0,
                      world_size: int = 1) -> dict[str, float]:
    """Exact-match accuracy of greedy answers after the answer marker, per task and length ("acc/qa1/1k"); the
    tasks of data.answer_steps, whose answers name a person before the room, by BABILong's label rule.

    Prompts are streamed ``segment_length`` tokens at a time in batches of ``eval.batch_size``, with the same
    batched greedy decoder as ``lm2 eval babilong`` (padding chosen so answers equal those of a batch of one).
    With ``world_size`` > 1 (data-parallel processes whose model forward needs no collective, i.e. DDP) each process
    decodes every ``world_size``-th sample from ``rank`` and the correct counts are summed over the processes: the
    same accuracies as one process, in 1/world_size of the time."""
    eos = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    keys, correct, totals = [], [], []
    steps = {check_task(t) for t in cfg.data.answer_steps}
    for task in cfg.data.babi_tasks:
        rule = "label" if check_task(task) in steps else "exact"  # "Mary kitchen" answers: the label rule
        for length in eval_lengths(cfg):
            samples = babilong_validation_samples(task, length, cfg.eval.samples)
            mine = list(range(rank, len(samples), world_size))
            prompts = []
            for i in mine:
                ids, labels = finetune_example(samples[i], tokenizer)
                first = next(j for j, lab in enumerate(labels) if lab != -100)  # the answer starts here
                prompts.append(list(ids)[:first])
            hits = 0
            for batch in plan_batches([len(p) for p in prompts], cfg.eval.batch_size, padding_multiple(model)):
                answers = greedy_streaming(model, [prompts[j] for j in batch], cfg.data.segment_length,
                                           cfg.eval.max_new_tokens, eos, pad_id(tokenizer), lambda _: False,
                                           device=device)
                hits += sum(score([clean_answer(tokenizer.decode(a)) for a in answers],
                                  [samples[mine[j]] for j in batch], rule))
            keys.append(f"acc/{task}/{length}")
            correct.append(hits)
            totals.append(len(samples))
    if world_size > 1:
        counts = torch.tensor(correct, dtype=torch.int64, device=device)
        torch.distributed.all_reduce(counts)
        correct = counts.tolist()
    return {key: hits / max(1, n) for key, hits, n in zip(keys, correct, totals)}


def recall_metrics(model, tokenizer, cfg: TrainConfig) -> dict[str, float]:
    """Recall accuracy on the validation samples (never the test seed) per number of distractor segments."""
    return {f"acc/recall/{d}": recall_accuracy(model, tokenizer, recall_validation_samples(cfg, d, cfg.eval.samples),
                                               cfg.data.segment_length, cfg.eval.batch_size)
            for d in eval_lengths(cfg)}


@torch.no_grad()
def evaluate(runner: SegmentedLM, tokenizer, cfg: TrainConfig, batches, device, rank: int = 0,
             world_size: int = 1) -> dict[str, float]:
    """Validation loss on ``batches`` (every process the same) and the accuracy metrics of the task; the BABILong
    accuracy is split over ``world_size`` processes (pass 1 where a forward needs every process, as under FSDP)."""
    model = runner.model
    was_training = model.training
    model.eval()
    total = count = 0.0
    for batch in batches:
        loss_sum, n = runner(**{k: (v.to(device) if v is not None else None) for k, v in batch.items()})
        total, count = total + loss_sum.item(), count + n.item()
    metrics = {"val_loss": total / max(count, 1)}
    if cfg.data.task in ("babilong", "recall") and cfg.eval.samples:
        if cfg.data.task == "babilong":
            metrics.update(babilong_accuracy(model, tokenizer, cfg, device, rank, world_size))
        else:
            metrics.update(recall_metrics(model, tokenizer, cfg))
        accs = [v for k, v in metrics.items() if k.startswith("acc/")]
        metrics["acc/mean"] = sum(accs) / len(accs)
    model.train(was_training)
    return metrics


# ----------------------------------------------------------------------------- logging


class MetricLog:
    """JSON lines (one record per log call) and TensorBoard scalars, written by process 0 only."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int | None = None):
        self.enabled, self.path, self.writer = enabled, out_dir / "metrics.jsonl", None
        if not enabled:
            return
        if resume_step is not None and self.path.exists():  # drop records of steps the resumed run will redo
            keep = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in keep))
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        from torch.utils.tensorboard import SummaryWriter  # heavy: tensorboard, only when logging to it

        # purge_step: TensorBoard drops the events of steps after the checkpoint, which the resumed run logs again
        self.writer = SummaryWriter(str(out_dir / "tensorboard"),
                                    purge_step=None if resume_step is None else resume_step + 1)

    def log(self, step: int, kind: str, metrics: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "kind": kind, **metrics}) + "\n")
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------- the run


@dataclass
class Run:
    """Everything the loop touches."""

    cfg: TrainConfig
    ctx: Dist
    tokenizer: object
    model: nn.Module  # the (possibly FSDP-sharded) model: state dicts and saving
    runner: nn.Module  # what a training step calls (SegmentedLM, possibly in DDP)
    optimizer: torch.optim.Optimizer
    scheduler: object
    stream: object
    micro: int
    accum: int
    step: int = 0
    tokens: int = 0  # tokens trained on so far (padding not counted), across resumes
    seconds: float = 0.0  # wall time of this process's loop, evaluations included
    best: float | None = None
    skipped: int = 0  # steps not applied because their loss or gradient norm was not finite (train.skip_nonfinite)
    out_dir: Path = Path(".")
    history: list = field(default_factory=list)
    command: str | None = None  # the command line that started this process (the model card names it)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_out_dir(cfg: TrainConfig, resume: bool, overwrite: bool) -> None:
    """Before any work: a run is continued only with --resume and replaced only with --overwrite."""
    check_writable_dir(cfg.out_dir, "out_dir")
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: continue the run in out_dir, or start over")
    found = ckpt.existing_run(cfg.out_dir)
    if found and not (resume or overwrite):
        raise ValueError(f"out_dir {cfg.out_dir} holds a run ({', '.join(found[:4])}): continue it with --resume, "
                         f"start over with --overwrite (deletes it), or choose another out_dir")


def find_resume_checkpoint(out_dir: Path, is_main: bool) -> Path:
    """The newest intact checkpoint; damaged newer ones are named in one line and set aside (by process 0)."""
    resume_from, damaged = ckpt.latest_intact(out_dir)
    if resume_from is None:
        detail = f": {'; '.join(f'{p.name}: {why}' for p, why in damaged)}" if damaged else ""
        raise ValueError(f"--resume: no complete checkpoint in {out_dir}{detail}")
    if damaged and is_main:
        names = ", ".join(f"{p.name} ({why})" for p, why in damaged)
        print(f"lm2 train: --resume: {names} damaged, set aside as damaged-*; resuming from {resume_from.name}",
              file=sys.stderr)
        for path, _ in damaged:
            ckpt.set_aside(path)
    return resume_from


def setup(cfg: TrainConfig, resume: bool = False, overwrite: bool = False) -> Run:
    ctx = init_distributed(cfg.train.device, cfg.distributed.backend)
    if cfg.train.threads:  # 0: as the command set it (lm2 train --threads, by default the cores it may use)
        set_threads(cfg.train.threads)
    out_dir = Path(cfg.out_dir)
    micro, accum = accumulation_steps(cfg, ctx.world_size)
    resume_from = find_resume_checkpoint(out_dir, ctx.is_main) if resume else None
    barrier(ctx)  # damaged checkpoints are set aside before any process reads the out_dir again
    if resume_from is not None:
        ckpt.check_compatible(resume_from, cfg)
    if overwrite and ctx.is_main:
        ckpt.clear_run(out_dir)
    if ctx.is_main:  # process 0 trains the tokenizer once; the others then read the cache
        tokenizer = task_tokenizer(cfg)
    barrier(ctx)
    if not ctx.is_main:
        tokenizer = task_tokenizer(cfg)

    seed_everything(cfg.train.seed)  # the same initial weights on every process
    model = build_model(cfg, vocab_size=len(tokenizer), tokenizer=tokenizer)
    if resume_from is not None:
        ckpt.load_model_weights(resume_from, model)
    model.to(ctx.device).train()
    segmented = SegmentedLM(model, cfg.data.segment_length, cfg.data.bptt_segments, cfg.train.write_penalty)
    runner = apply_parallelism(model, segmented, cfg.distributed.strategy, ctx)
    optimizer = build_optimizer(model, cfg.train.lr, cfg.train.weight_decay, cfg.train.betas,
                                backbone_lr=cfg.train.backbone_lr)
    scheduler = build_scheduler(optimizer, cfg.train.warmup_steps, cfg.total_steps(), cfg.train.min_lr_ratio,
                                cfg.train.cooldown_steps)
    run = Run(cfg, ctx, tokenizer, model, runner, optimizer, scheduler, None, micro, accum, out_dir=out_dir)
    if resume_from is not None:
        state = ckpt.load_trainer_state(resume_from)
        ckpt.load_optimizer_state(model, optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        ckpt.set_rng_state(state["rng"])
        run.step, run.best, run.tokens = state["step"], state.get("best"), state.get("tokens", 0)
        run.skipped = state.get("skipped", 0)
    run.stream = make_stream(cfg, tokenizer, ctx.rank, ctx.world_size, micro, start_step=run.step)
    if ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")
    return run


def train_step(run: Run) -> dict:
    """One optimizer step over the global batch: accumulate micro-batches, clip, step. Returns the mean loss.

    Each process scales its summed loss by world_size / (labelled tokens in the global batch): DDP and FSDP
    average gradients over processes, so the result is the gradient of the global per-token mean, whatever
    the number of processes and accumulation steps.
    """
    cfg, ctx = run.cfg, run.ctx
    batches = run.stream.micro_batches(run.step)
    local_count = sum(int((b["labels"][:, 1:] != -100).sum()) for b in batches)
    global_count = all_reduce_sum(local_count, ctx)
    run.optimizer.zero_grad(set_to_none=True)
    loss_sum, tokens, strength, penalised = 0.0, 0, 0.0, False
    segmented = getattr(run.runner, "module", run.runner)  # DDP wraps it; FSDP and a single process do not
    for i, batch in enumerate(batches):
        batch = {k: (v.to(ctx.device) if v is not None else None) for k, v in batch.items()}
        with no_sync(run.runner, enabled=i < len(batches) - 1), precision_context(
                ctx.device, cfg.train.precision):
            loss, _ = run.runner(**batch)
        (loss * ctx.world_size / global_count).backward()
        # the logged loss stays the language-model loss, without the write penalty
        penalised = segmented.lm_loss_sum is not None
        loss_sum += segmented.lm_loss_sum if penalised else loss.item()
        strength += segmented.strength / len(batches)
        tokens += batch_tokens(batch)
    mean_loss = all_reduce_sum(loss_sum, ctx) / global_count
    if run.step < cfg.train.memory_after:  # the memory waits at its initialisation: AdamW skips a None gradient
        for name, param in run.model.named_parameters():
            if ".memory." in name:
                param.grad = None
    grad_norm = torch.nn.utils.clip_grad_norm_(
        [p for p in run.model.parameters() if p.requires_grad], cfg.train.grad_clip or float("inf"))
    grad_norm = float(grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm)
    # A finite loss does not make a finite gradient (a huge lr overflows the backward first): check both. The
    # norm is global (all processes), so every process takes the same branch.
    applied = math.isfinite(mean_loss) and math.isfinite(grad_norm)
    if not applied:
        run.skipped += 1
        if run.skipped > cfg.train.skip_nonfinite:
            raise TrainingDiverged(f"step {run.step + 1}: the loss is {mean_loss}, the gradient norm {grad_norm}; "
                                   f"stopped before applying the step ({run.skipped - 1} such steps skipped before, "
                                   f"train.skip_nonfinite={cfg.train.skip_nonfinite})")
        run.optimizer.zero_grad(set_to_none=True)
    else:
        run.optimizer.step()
    run.scheduler.step()  # a skipped step keeps its place in the schedule and the data, so resuming stays exact
    run.step += 1
    penalty = {"write_strength": all_reduce_sum(strength, ctx) / ctx.world_size} if penalised else {}
    return {"loss": mean_loss, "lr": run.scheduler.get_last_lr()[0], "grad_norm": grad_norm,
            "tokens": int(all_reduce_sum(tokens, ctx)), **penalty, **({} if applied else {"skipped": True})}


def run_records(run: Run) -> list[dict]:
    """Every record of the run so far, those of earlier (resumed) processes included: its metrics.jsonl."""
    metrics = run.out_dir / "metrics.jsonl"
    return read_metrics(metrics) if metrics.is_file() else run.history


def save_checkpoint(run: Run, folder: Path) -> None:
    card = None
    if run.ctx.is_main:
        card = model_card(run.model, run.cfg, run.step, run.tokens, run_records(run), run.command, folder.name)
    ckpt.save(folder, run.model, run.optimizer, run.scheduler, run.cfg, run.step, run.tokenizer,
              extra={"best": run.best, "tokens": run.tokens, "skipped": run.skipped, "data": run.stream.state_dict(),
                     "world_size": run.ctx.world_size},
              is_main=run.ctx.is_main, card=card)
    if run.ctx.is_main:
        ckpt.prune(run.out_dir, run.cfg.checkpoint.keep_last)
    barrier(run.ctx)


def is_better(cfg: TrainConfig, value: float, best: float | None) -> bool:
    if not math.isfinite(value):
        return False  # a NaN model is never the best one
    if best is None:
        return True
    return value < best if cfg.checkpoint.best_metric.endswith("loss") else value > best


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, overwrite: bool = False,
          command: str | None = None) -> Run:
    """Train as configured; returns the finished run (its ``history`` holds every logged record).

    ``out_dir`` is locked for the whole run (process 0 holds it), so a second run into it is refused. ``command``
    (the command line) goes into every checkpoint's model card."""
    check_out_dir(cfg, resume, overwrite)
    with contextlib.ExitStack() as stack:
        if int(os.environ.get("RANK", "0")) == 0:
            stack.enter_context(hold(cfg.out_dir, "lm2 train", "out_dir"))
        return _train(cfg, resume, progress, overwrite, command)


def _train(cfg: TrainConfig, resume: bool, progress: bool, overwrite: bool, command: str | None) -> Run:
    run = setup(cfg, resume, overwrite)
    run.command = command
    ctx, total = run.ctx, cfg.total_steps()
    end = cfg.last_step()  # with train.stop_after the schedule still spans all `total` steps
    val_batches = validation_batches(cfg, run.tokenizer, run.micro)
    unwrapped = SegmentedLM(run.model, cfg.data.segment_length)  # evaluation needs no DDP
    log = MetricLog(run.out_dir, ctx.is_main, resume_step=run.step if resume else None)
    bar = tqdm(total=total, initial=run.step, disable=not (progress and ctx.is_main), dynamic_ncols=True)
    start, last_stage = time.perf_counter(), None

    def validate() -> dict:
        # a DDP forward of the unwrapped model needs no other process, so the accuracy samples are split between
        # them; FSDP's forward gathers parameters from every process, so there each one decodes every sample
        share = (0, 1) if cfg.distributed.strategy == "fsdp" else (ctx.rank, ctx.world_size)
        metrics = evaluate(unwrapped, run.tokenizer, cfg, val_batches, ctx.device, *share)
        metrics["elapsed_s"] = time.perf_counter() - start
        log.log(run.step, "eval", metrics)
        run.history.append({"step": run.step, "kind": "eval", **metrics})
        if ctx.is_main:  # every process evaluates the same batches; one prints
            bar.write(f"step {run.step}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        return metrics

    try:
        if cfg.eval.at_start and run.step == 0:
            validate()
        while run.step < end:
            curriculum = cfg.data.task in ("babilong", "recall")
            stage = cfg.stage_at(run.step)[0] if curriculum else 0
            if stage != last_stage and ctx.is_main and curriculum:
                bar.write(f"step {run.step}: curriculum stage {stage}: {cfg.data.curriculum[stage]}")
            last_stage = stage
            t0 = time.perf_counter()
            record = {**train_step(run), "stage": stage}
            tokens = record.pop("tokens")
            run.tokens += tokens
            record["tok_per_s"] = tokens / (time.perf_counter() - t0)
            record["tokens_seen"] = run.tokens
            log.log(run.step, "train", record)
            run.history.append({"step": run.step, "kind": "train", **record})
            bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{record['tok_per_s']:.0f}")
            bar.update(1)
            last = run.step == end
            if (cfg.eval.interval and run.step % cfg.eval.interval == 0) or last:
                metrics = validate()
                value = metrics.get(cfg.checkpoint.best_metric)
                if cfg.checkpoint.keep_best and value is not None and is_better(cfg, value, run.best):
                    run.best = value
                    save_checkpoint(run, run.out_dir / "best")
            if (cfg.checkpoint.interval and run.step % cfg.checkpoint.interval == 0) or last:
                save_checkpoint(run, run.out_dir / f"ckpt-{run.step:06d}")
    except TrainingDiverged as err:
        good = ckpt.latest_intact(run.out_dir)[0]
        raise TrainingDiverged(f"{err}; the last good checkpoint is {good or '(none written yet)'}") from None
    finally:
        run.seconds = time.perf_counter() - start
        bar.close()
        log.close()
        shutdown(ctx)
    return run
