"""The training config: one typed dataclass per section, loaded from YAML plus ``--section.field value`` overrides.

Everything is validated before any work starts (no tokenizer training, no model built), and every error names
the field (``train.lr``), the value and what would be right. The resolved config (after overrides) is what is
saved with every checkpoint, so a run can always be reproduced from its checkpoint folder alone.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config

import lm2
from lm2.configuration_lm2 import PRESETS, LM2Config
from lm2.data import babi
from lm2.data.babi.questions import EVERY_QUESTION_TASKS, STEP_TASKS
from lm2.data.babilong import parse_length
from lm2.data.babilong_release import open_release
from lm2.data.recall import STAGE_FIELDS, RecallSpec, stage_spec
from lm2.precision import PRECISIONS

# optional fields of a BABILong curriculum stage (a compact training layout; see DataSection.curriculum)
BABILONG_STAGE_FIELDS = ("drop_words", "bare_questions", "compact_share", "length_per_step", "one_point_at",
                         "one_point", "ask_at_end", "step_share")

MODEL_KINDS = ("lm2", "vanilla", "rmt")
TASKS = ("babilong", "lm", "recall")
STRATEGIES = ("none", "ddp", "fsdp")


@with_config(ConfigDict(extra="forbid"))
@dataclass
class ModelSection:
    kind: str = "lm2"
    """lm2 | vanilla (the same backbone with memory_layers=0, same window) | rmt (lm2.rmt, the RMT baseline)."""
    preset: str = "tiny"
    """An LM2Config preset (tiny, small, 40m, lm2-1.7b); ignored with init_from."""
    init_from: str | None = None
    """An HF Llama folder or "smollm2-135m": the backbone's weights; memory blocks are added to it."""
    freeze_backbone: bool = False
    """Train only the memory parameters (names containing ".memory.")."""
    config: dict = field(default_factory=dict)
    """LM2Config fields over the preset (hidden_size, memory_slots, memory_update_interval, sliding_window, ...)."""
    rmt: dict = field(default_factory=dict)
    """Extra keyword arguments for the RMT baseline (e.g. num_memory_tokens)."""


@with_config(ConfigDict(extra="forbid"))
@dataclass
class DataSection:
    task: str = "babilong"
    """babilong (answer-only fine-tuning on generated BABILong samples) | lm (packed-text pretraining) | recall
    (the multi-segment associative-recall diagnostic of the memory: lm2.data.recall)."""
    tokenizer: str = "bpe:1024"
    """"bpe:<vocab>" (a byte-level BPE trained once on the books + bAbI text, cached), "gpt2", "smollm2" or a
    folder. The model's vocab_size is set from it."""
    segment_length: int = 128
    """Tokens per segment of segment-recurrent training; the memory state is carried across segments."""
    bptt_segments: int = 0
    """Truncate backpropagation through the carried state every this many segments (0 = never)."""
    # --- babilong
    supervise: str = "answer"
    """answer: one question per sequence, the loss on its answer (BABILong's format); story: a whole bAbI story per
    sequence with every question answered where it is asked (five answers per story; at 0k as accurate per step
    as answer, for three times the tokens: RESULTS.md 1c)."""
    fact_loss: bool = False
    """With supervise=story: also the language-model loss on the story's statements and questions (never on the
    background text). Measured on qa2 alone it slows the answers (22% against 43% on validation after 800 steps on the
    same tokens, one seed: RESULTS.md 1c, "What limits qa2"), so no shipped config sets it."""
    ask_everyone: bool = False
    """With supervise=story and tasks among qa1-qa5: every question point asks every question its statements answer
    (lm2.data.babi.questions: in qa1 where each person placed so far is, about 3x the answers per story, so that
    answering with the last room mentioned no longer pays; in qa2 each placed object; in qa5 all five forms)."""
    answer_steps: list = field(default_factory=list)
    """With supervise=story: tasks among qa2 and qa3 whose answers are written after the person their first hop
    finds ("Mary kitchen": who last handled the object, or who carried it; lm2.data.babi.questions.with_step), so
    that each generated word takes one lookup. Validation and `lm2 eval babilong` score these tasks by BABILong's
    label rule (the one room named must be the answer) instead of exact match. Measured on qa2 alone: RESULTS.md
    1c, "What limits qa2" (there too: the step taken away again by a curriculum stage's step_share: 0, which left
    most runs answering the room directly, composed)."""
    facts_within: float = 1.0
    """With supervise=answer and generated samples: hide a training sample's facts among the first this fraction
    of its background sentences (0.5: the first half), so that at 2k they lie beyond what stacked attention windows
    reach and only a carried state can bring them to the question. 1.0 (anywhere) is BABILong's layout; validation
    and test always use it."""
    babi_tasks: list = field(default_factory=lambda: ["qa1"])
    """bAbI tasks to mix (each sample draws one uniformly, or by data.task_weights)."""
    task_weights: dict = field(default_factory=dict)
    """Relative weights of data.babi_tasks' tasks when a sample draws its task ({qa1: 1, qa2: 3}: qa2 three times
    as often as qa1); a task left out weighs 1, and a weight of 0 never draws it. Empty: uniform (the same samples
    as before the option existed). Measured in the qa1-qa5 mixture: RESULTS.md 1c."""
    babilong_path: str | None = None
    """A local copy of the official BABILong training data (RMT-team/babilong-train-5k-samples, in a layout of
    lm2.data.babilong_release) to draw samples from instead of generating them; every task of babi_tasks must be
    there at every curriculum length. Validation stays on lm2's generated test samples."""
    curriculum: list = field(default_factory=lambda: [{"steps": 100, "lengths": ["0k"]}])
    """Stages [{steps, lengths}], run in order, each from where the last ended; every sample of a batch draws its
    length from the stage's list, so lengths vary within a batch and the number of segments grows by stage.
    For data.task=recall a stage is {steps, distractors: [..]}: numbers of distractor segments to draw from, and
    optionally gap: G and query_gap: Q, the stage's own data.recall.gap and query_gap (e.g. adjacent pairs first,
    then gaps; a query_gap > 0 anywhere needs data.recall.query_gap > 0, which gives the vocabulary its marker).
    A BABILong stage may add drop_words: [..], words removed from the training statements in that stage (e.g. qa1's
    verbs, "to" and "the": "Mary kitchen.", the person right before the room), and with data.supervise=story
    bare_questions: true, questions without the prompt's markers, less drop_words and "?", the answer right after
    ("Mary kitchen"); compact_share: p lays out only that share of the stage's samples so (drawn per sample), the
    rest as evaluated, to move between layouts without a jump; length_per_step: true draws one length per step
    for the whole batch (e.g. lengths [0k, 1k]: about half the steps all 0k, cheap, instead of 0k samples padded
    to the 1k ones' length); with data.supervise=story, one_point_at: [..] names lengths among the stage's at
    which a story keeps the questions of one question point only (one_point: random, the default, a point drawn
    per story and the story cut there, as an evaluation sample is; last: its last point; ``story_finetune_example``):
    no earlier answer restates where someone is, so every answer comes from the statements, through the memory
    when they lie beyond attention, as in evaluation; ask_at_end: true asks them after the whole context, as an
    evaluation prompt does, instead of right after the point's last statement. With data.answer_steps, step_share: p
    writes the answers of that share of the stage's stories with their step (drawn per story; the default 1 writes
    all), the rest with the room alone: stages whose share falls to 0 move a model that composes through the written
    person to answering the room directly. Validation and test keep the text."""
    # --- recall
    recall: dict = field(default_factory=dict)
    """Fields of lm2.data.recall.RecallSpec (pairs, queries, num_keys, num_values, num_fillers, segment_length, gap,
    query_gap);
    segment_length should equal the model's sliding_window, so that one distractor segment hides the pairs."""
    # --- lm
    source: str = "books"
    """Pretraining text: "books" (the TRAIN books), a .txt/.jsonl/.parquet file or folder, or an HF dataset."""
    val_source: str = "books:test"
    block_size: int = 512
    """Tokens per packed pretraining sequence (split into segments of segment_length)."""


@with_config(ConfigDict(extra="forbid"))
@dataclass
class TrainSection:
    steps: int = 0
    """Optimizer steps; 0 = the sum of the curriculum's steps (babilong)."""
    batch_size: int = 8
    """Global batch: sequences per optimizer step, over all processes and accumulation steps."""
    micro_batch_size: int = 0
    """Sequences per forward pass and process; 0 = batch_size / world_size (no accumulation)."""
    lr: float = 1e-3
    backbone_lr: float | None = None
    """Peak lr of the parameters outside the memory modules (e.g. a pretrained Llama's, with model.init_from);
    null = train.lr. The new memory can learn fast while the backbone moves little."""
    min_lr_ratio: float = 0.1
    """The cosine schedule ends at lr * min_lr_ratio."""
    cooldown_steps: int = 0
    """The last K optimizer steps fall linearly from lr * min_lr_ratio towards zero (the cosine ends K steps
    earlier): a schedule that must keep its lr high late (e.g. for a curriculum's last stages) still ends on a
    settled model. 0 = no cooldown; longer than the steps after warm-up (a run shortened by an override), those
    steps."""
    warmup_steps: int = 50
    weight_decay: float = 0.1
    """Decoupled (AdamW); norms, biases, embeddings and the initial memory get none."""
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""
    skip_nonfinite: int = 0
    """A step whose loss or gradient norm is NaN or infinite is never applied. 0: the run stops at the first one;
    K: up to K such steps in the run are skipped (logged with skipped: true), the run stops at the next."""
    memory_after: int = 0
    """LM2 only: optimizer steps during which the memory parameters stay at their initialisation (their gradients
    are dropped): with the memory's read projection at zero the model is exactly its backbone until then, so the
    backbone learns the task first and the memory joins after. 0 = from the first step."""
    write_penalty: float = 0.0
    """LM2 with a per-token write strength (model.config.memory_write_gate: token): adds write_penalty times
    the mean write strength (over the batch's tokens and the memory blocks, before any memory_write_threshold) to
    the per-token loss, so that a token writes only where the loss pays for it: background text that writes at
    every sentence wears a bank written thousands of times away. The logged loss stays the language-model loss;
    the mean strength is logged as write_strength. 0 = off. An LM2 whose memory has no write strength is refused;
    vanilla and RMT have no memory writes, and the field changes nothing there (one recipe serves every kind)."""
    stop_after: int = 0
    """Stop after this optimizer step (validating and saving a checkpoint there) while keeping the learning-rate
    schedule of the whole run, so that ``--resume`` without it continues the same run. 0 = run to the end."""
    precision: str = "fp32"
    """fp32 | bf16 (autocast; for GPUs: a bf16 step is ~35x slower than fp32 on these CPUs)."""
    seed: int = 0
    threads: int = 0
    """torch CPU threads; 0 = the command's ``--threads`` (default: OMP_NUM_THREADS if set, else the cores this
    process may use). ``lm2 train --threads N`` sets this field, so it is saved with the run's config."""
    device: str = "auto"
    """auto (cuda if available) | cpu | cuda."""


@with_config(ConfigDict(extra="forbid"))
@dataclass
class EvalSection:
    interval: int = 100
    """Evaluate every this many steps (and at the end); 0 = only at the end."""
    at_start: bool = False
    """Also evaluate before the first step (logged as step 0): where a fine-tuned model starts from."""
    val_batches: int = 4
    """Batches of held-out data for the validation loss, each of train.batch_size sequences (whatever
    train.micro_batch_size and the number of processes)."""
    samples: int = 50
    """BABILong test samples per task and length for exact-match accuracy (greedy decoding)."""
    lengths: list = field(default_factory=list)
    """BABILong lengths to evaluate; empty = every length of the curriculum."""
    max_new_tokens: int = 6
    batch_size: int = 16
    """Prompts decoded together in the BABILong accuracy evaluation."""


@with_config(ConfigDict(extra="forbid"))
@dataclass
class CheckpointSection:
    interval: int = 0
    """Save every this many steps (0 = only at the end)."""
    keep_last: int = 2
    keep_best: bool = True
    """Also keep the checkpoint with the best `best_metric` (as best/)."""
    best_metric: str = "val_loss"
    """A metric of the eval record; *loss is minimised, anything else maximised."""


@with_config(ConfigDict(extra="forbid"))
@dataclass
class DistributedSection:
    strategy: str = "none"
    """none | ddp | fsdp (FSDP2 fully_shard). Under torchrun with strategy none, ddp is used."""
    backend: str = "auto"
    """auto (nccl on GPU, gloo on CPU) | gloo | nccl."""


@with_config(ConfigDict(extra="forbid"))
@dataclass
class TrainConfig:
    out_dir: str = "runs/default"
    """Run folder: checkpoints (ckpt-<step>/, best/), metrics.jsonl, tensorboard/, config.yaml."""
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalSection = field(default_factory=EvalSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    distributed: DistributedSection = field(default_factory=DistributedSection)

    # ------------------------------------------------------------------ derived values
    def total_steps(self) -> int:
        if self.train.steps:
            return self.train.steps
        return sum(int(stage["steps"]) for stage in self.data.curriculum)

    def last_step(self) -> int:
        """The step this run stops at: ``train.stop_after``, or the end of its schedule (``total_steps``)."""
        return self.train.stop_after or self.total_steps()

    def stage_at(self, step: int) -> tuple[int, dict]:
        """The curriculum stage (index, stage) that optimizer step ``step`` (0-based) belongs to; after the last
        stage's steps the last stage continues."""
        end = 0
        for index, stage in enumerate(self.data.curriculum):
            end += int(stage["steps"])
            if step < end:
                return index, stage
        return len(self.data.curriculum) - 1, self.data.curriculum[-1]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = ("model", "data", "train", "eval", "checkpoint", "distributed")


# ----------------------------------------------------------------------------- building and checking


_ADAPTER = TypeAdapter(TrainConfig)


def _build(values: Any) -> TrainConfig:
    """The config from nested dicts, each field checked against its annotation by pydantic (strictly, as JSON: an
    int is no float's string, a bool no int); an error names the field and the value."""
    if isinstance(values, dict):  # an empty section (`train:` with nothing under it) is the defaults
        values = {k: {} if v is None and k in SECTIONS else v for k, v in values.items()}
    try:
        return _ADAPTER.validate_json(json.dumps(values, default=str), strict=True)
    except ValidationError as err:
        error = err.errors()[0]
        name = ".".join(map(str, error["loc"])) or "<root>"
        if error["type"] == "unexpected_keyword_argument":
            section = functools.reduce(lambda cls, part: typing.get_type_hints(cls)[part], error["loc"][:-1],
                                       TrainConfig)
            raise ValueError(f"unknown config field {name}: the fields of {'.'.join(error['loc'][:-1]) or 'the config'}"
                             f" are {sorted(f.name for f in dataclasses.fields(section))}") from None
        raise ValueError(f"config field {name}={error['input']!r} is invalid: {error['msg'].lower()}") from None


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"config field {name}={value!r} is invalid: choose one of {list(choices)}")


def _same_length(length: Any, lengths: list) -> bool:
    """Whether ``length`` (e.g. "1k" or 1000) is one of ``lengths``, compared in tokens."""
    try:
        return parse_length(length) in {parse_length(n) for n in lengths}
    except (ValueError, TypeError):
        return False


def _positive(name: str, value: Any, zero_ok: bool = False) -> None:
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"config field {name}={value!r} is invalid: it must be {'>= 0' if zero_ok else '> 0'}")


def task_weights(d: DataSection) -> list[float] | None:
    """data.task_weights as one weight per entry of data.babi_tasks (1 for a task left out), or None when empty:
    samples then draw their task uniformly. Raises ValueError, naming the field, for a weight that is not a
    non-negative number, a task that babi_tasks does not train, or weights that leave no task to draw."""
    if not isinstance(d.task_weights, dict):
        raise ValueError(f"config field data.task_weights={d.task_weights!r} must be a mapping of task to weight, "
                         "e.g. {qa1: 1, qa2: 3}")
    if not d.task_weights:
        return None
    trained = [babi.check_task(task) for task in d.babi_tasks]
    given: dict[str, float] = {}
    for task, weight in d.task_weights.items():
        try:
            name = babi.check_task(task)
        except ValueError as err:
            raise ValueError(f"config field data.task_weights: {err}") from None
        if name not in trained:
            raise ValueError(f"config field data.task_weights names {task!r}, which data.babi_tasks "
                             f"({', '.join(map(str, d.babi_tasks))}) does not train: add it there or drop its weight")
        if name in given:
            raise ValueError(f"config field data.task_weights gives {name} twice")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"config field data.task_weights: the weight of {task!r} is {weight!r}; a weight is a "
                             "number >= 0 (0 never draws the task)")
        given[name] = float(weight)
    weights = [given.get(name, 1.0) for name in trained]
    if not any(weights):
        raise ValueError("config field data.task_weights gives every task of data.babi_tasks weight 0: no sample "
                         "could draw a task; give at least one a positive weight")
    return weights


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check values and their combinations; raise ValueError naming the field. Cheap: builds nothing."""
    m, d, t, e, c, dist = cfg.model, cfg.data, cfg.train, cfg.eval, cfg.checkpoint, cfg.distributed
    _choice("model.kind", m.kind, MODEL_KINDS)
    _choice("data.task", d.task, TASKS)
    _choice("train.precision", t.precision, PRECISIONS)
    _choice("train.device", t.device, ("auto", "cpu", "cuda"))
    _choice("distributed.strategy", dist.strategy, STRATEGIES)
    _choice("distributed.backend", dist.backend, ("auto", "gloo", "nccl"))
    if m.init_from is None:
        _choice("model.preset", m.preset, tuple(PRESETS))
    if m.init_from and d.tokenizer.startswith("bpe:"):
        raise ValueError(f"config field data.tokenizer={d.tokenizer!r} is invalid with model.init_from: a pretrained "
                         f"model needs its own tokenizer (smollm2, or the model's folder)")
    if m.freeze_backbone and m.kind != "lm2":
        raise ValueError("config field model.freeze_backbone=true needs model.kind=lm2 (only LM2 has .memory. "
                         "parameters to train)")
    for name in ("segment_length", "block_size"):
        _positive(f"data.{name}", getattr(d, name))
    _positive("data.bptt_segments", d.bptt_segments, zero_ok=True)
    _check_model_fields(m)
    if d.task == "babilong":
        _choice("data.supervise", d.supervise, ("answer", "story"))
        if d.fact_loss and d.supervise != "story":
            raise ValueError("config field data.fact_loss=true needs data.supervise=story (the loss on a story's "
                             "statements and questions)")
        if isinstance(d.facts_within, bool) or not isinstance(d.facts_within, (int, float)) \
                or not 0 < d.facts_within <= 1:
            raise ValueError(f"config field data.facts_within={d.facts_within!r} must be a fraction in (0, 1] "
                             "(1.0 places the facts anywhere, BABILong's layout)")
        if d.facts_within != 1 and (d.supervise != "answer" or d.babilong_path is not None):
            raise ValueError("config field data.facts_within needs data.supervise=answer and generated samples (no "
                             "data.babilong_path): it places the facts of a single generated question")
        if not d.babi_tasks:
            raise ValueError("config field data.babi_tasks is empty: give at least one task, e.g. [qa1]")
        if d.babilong_path is not None and d.supervise != "answer":
            raise ValueError("config field data.babilong_path needs data.supervise=answer: the official samples are "
                             "single questions, not whole bAbI stories")

        tasks = set()
        for task in d.babi_tasks:
            try:
                tasks.add(babi.check_task(task))
            except (ValueError, KeyError) as err:
                raise ValueError(f"config field data.babi_tasks: {err}") from None
        if d.ask_everyone and (d.supervise != "story" or not tasks <= set(EVERY_QUESTION_TASKS)):
            raise ValueError("config field data.ask_everyone=true needs data.supervise=story and data.babi_tasks "
                             f"among {', '.join(EVERY_QUESTION_TASKS)} (it asks every question a story point answers), "
                             f"got supervise={d.supervise!r}, babi_tasks={list(d.babi_tasks)}")
        steps = set()
        for task in d.answer_steps:  # a list: the type check comes first
            try:
                steps.add(babi.check_task(task))
            except (ValueError, KeyError) as err:
                raise ValueError(f"config field data.answer_steps: {err}") from None
        if steps and (d.supervise != "story" or not steps <= set(STEP_TASKS) & tasks):
            raise ValueError(f"config field data.answer_steps={d.answer_steps!r} is invalid: a list of tasks among "
                             f"{', '.join(STEP_TASKS)} that data.babi_tasks trains, with data.supervise=story (got "
                             f"supervise={d.supervise!r}, babi_tasks={list(d.babi_tasks)})")
        task_weights(d)  # raises on a bad data.task_weights
        if not d.curriculum:
            raise ValueError("config field data.curriculum is empty: give at least one stage {steps, lengths}")

        for i, stage in enumerate(d.curriculum):
            where = f"data.curriculum[{i}]"
            fields = {"steps", "lengths", *BABILONG_STAGE_FIELDS}
            if not isinstance(stage, dict) or set(stage) - fields or "lengths" not in stage:
                raise ValueError(f"config field {where}={stage!r} is invalid: a stage is {{steps: N, lengths: [..]}}"
                                 " with optionally drop_words: [..], bare_questions: true, compact_share: p, "
                                 "length_per_step: true, one_point_at: [..], one_point: random|last, ask_at_end: "
                                 "true and step_share: p")
            if not isinstance(stage.get("steps"), int) or stage["steps"] < 1:
                raise ValueError(f"config field {where}.steps={stage.get('steps')!r} is invalid: a positive int")
            if not isinstance(stage["lengths"], list) or not stage["lengths"]:
                raise ValueError(f"config field {where}.lengths={stage['lengths']!r} is invalid: a non-empty list")
            for length in stage["lengths"]:
                try:
                    parse_length(length)
                except (ValueError, TypeError) as err:
                    raise ValueError(f"config field {where}.lengths: {err}") from None
            drop = stage.get("drop_words", [])
            if not isinstance(drop, list) or not all(isinstance(w, str) and w and " " not in w for w in drop):
                raise ValueError(f"config field {where}.drop_words={drop!r} is invalid: a list of single words, "
                                 "e.g. [went, moved, to, the]")
            if not isinstance(stage.get("bare_questions", False), bool):
                raise ValueError(f"config field {where}.bare_questions={stage['bare_questions']!r} is invalid: "
                                 "true or false")
            if not isinstance(stage.get("length_per_step", False), bool):
                raise ValueError(f"config field {where}.length_per_step={stage['length_per_step']!r} is invalid: "
                                 "true (one length per step, drawn from the stage's lengths) or false (per sample)")
            for key, what in (("compact_share", "samples laid out with its drop_words and bare_questions"),
                              ("step_share", "stories whose answers are written with their step")):
                share = stage.get(key, 1.0)
                if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                    raise ValueError(f"config field {where}.{key}={share!r} is invalid: the share of the stage's "
                                     f"{what}, a number in [0, 1]")
            if "step_share" in stage and not d.answer_steps:
                raise ValueError(f"config field {where}.step_share sets how many stories are answered with their "
                                 "step, but data.answer_steps names no task: add data.answer_steps (e.g. [qa2]) or "
                                 "drop step_share")
            if stage.get("bare_questions") and d.supervise != "story":
                raise ValueError(f"config field {where}.bare_questions asks every question of a story without the "
                                 "prompt's markers; it needs data.supervise=story")
            one = stage.get("one_point_at", [])
            if not isinstance(one, list) or not all(_same_length(n, stage["lengths"]) for n in one):
                raise ValueError(f"config field {where}.one_point_at={one!r} is invalid: a list of lengths among "
                                 f"the stage's lengths {stage['lengths']}")
            if "one_point" in stage and not one:
                raise ValueError(f"config field {where}.one_point={stage['one_point']!r} chooses the question point "
                                 "kept at the lengths of one_point_at, which this stage does not set: add "
                                 "one_point_at: [..] or drop one_point")
            if stage.get("one_point", "random") not in ("random", "last"):
                raise ValueError(f"config field {where}.one_point={stage['one_point']!r} is invalid: random (a "
                                 "question point drawn per story) or last (the story's last)")
            if not isinstance(stage.get("ask_at_end", False), bool) or (stage.get("ask_at_end") and not one):
                raise ValueError(f"config field {where}.ask_at_end={stage['ask_at_end']!r} is invalid: true or false, "
                                 "and true needs one_point_at (one question point per story, asked after the whole "
                                 "context)")
            if one and d.supervise != "story":
                raise ValueError(f"config field {where}.one_point_at keeps one question point of a story; it needs "
                                 "data.supervise=story")
            if drop and d.babilong_path is not None:
                raise ValueError(f"config field {where}.drop_words compacts generated statements; it cannot be "
                                 "used with data.babilong_path (the official samples)")
        if d.babilong_path is not None:
            release = open_release(d.babilong_path, what="config field data.babilong_path")
            try:
                release.check(d.babi_tasks, [n for stage in d.curriculum for n in stage["lengths"]])
            except ValueError as err:
                raise ValueError(f"config field data.babilong_path: {err}") from None
        for length in e.lengths:
            try:
                parse_length(length)
            except (ValueError, TypeError) as err:
                raise ValueError(f"config field eval.lengths: {err}") from None
    elif d.task == "recall":
        try:
            RecallSpec(**d.recall)
        except TypeError:
            raise ValueError(f"config field data.recall={d.recall!r} is invalid: its fields are "
                             f"{sorted(RecallSpec.__dataclass_fields__)}") from None
        except ValueError as err:
            raise ValueError(f"config field data.{err}") from None
        if not d.curriculum:
            raise ValueError("config field data.curriculum is empty: give at least one stage {steps, distractors}")
        for i, stage in enumerate(d.curriculum):
            where = f"data.curriculum[{i}]"
            keys = set(stage) if isinstance(stage, dict) else set()
            if (not isinstance(stage, dict) or not {"steps", "distractors"} <= keys <= {"steps", "distractors",
                                                                                      *STAGE_FIELDS}
                    or not isinstance(stage["steps"], int) or stage["steps"] < 1
                    or not isinstance(stage["distractors"], list) or not stage["distractors"]
                    or not all(isinstance(n, int) and n >= 0 for n in stage["distractors"])):
                raise ValueError(f"config field {where}={stage!r} is invalid: a recall stage is {{steps: N, "
                                 f"distractors: [non-negative ints]}}, optionally with gap: G and query_gap: Q "
                                 f"(this stage's data.recall.gap and query_gap)")
            try:
                stage_spec(RecallSpec(**d.recall), stage)
            except ValueError as err:
                raise ValueError(f"config field {where}: {err}") from None
            if stage.get("query_gap") and not d.recall.get("query_gap"):
                raise ValueError(f"config field {where}: query_gap={stage['query_gap']} needs data.recall.query_gap "
                                 f"> 0 (the vocabulary's answer marker comes from it); give the final query_gap there "
                                 f"and 0 in the stages that ask without markers")
        for n in e.lengths:
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"config field eval.lengths={e.lengths!r} is invalid for data.task=recall: numbers "
                                 f"of distractor segments (non-negative ints)")
    elif t.steps < 1:
        raise ValueError(f"config field train.steps={t.steps} is invalid for data.task=lm: give the number of steps")
    for name in ("steps", "micro_batch_size", "warmup_steps", "threads", "seed"):
        _positive(f"train.{name}", getattr(t, name), zero_ok=True)
    _positive("train.batch_size", t.batch_size)
    _positive("train.lr", t.lr)
    if t.backbone_lr is not None:
        _positive("train.backbone_lr", t.backbone_lr)
        if m.freeze_backbone:
            raise ValueError("config field train.backbone_lr is set but model.freeze_backbone=true trains no backbone "
                             "parameter: drop one of the two")
        if m.kind != "lm2":
            raise ValueError(f"config field train.backbone_lr needs model.kind=lm2 (it sets the lr of everything "
                             f"outside LM2's .memory. modules; model.kind={m.kind!r} has none)")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ValueError(f"config field train.min_lr_ratio={t.min_lr_ratio} is invalid: it must be in [0, 1]")
    _positive("train.cooldown_steps", t.cooldown_steps, zero_ok=True)
    _positive("train.weight_decay", t.weight_decay, zero_ok=True)
    _positive("train.grad_clip", t.grad_clip, zero_ok=True)
    _positive("train.skip_nonfinite", t.skip_nonfinite, zero_ok=True)
    _positive("train.memory_after", t.memory_after, zero_ok=True)
    _positive("train.write_penalty", t.write_penalty, zero_ok=True)
    _positive("train.stop_after", t.stop_after, zero_ok=True)
    if t.stop_after > cfg.total_steps():
        raise ValueError(f"config field train.stop_after={t.stop_after} is past the run's last step "
                         f"({cfg.total_steps()}): give at most that, or 0 to run to the end")
    if t.memory_after and (m.kind != "lm2" or m.freeze_backbone):
        raise ValueError(f"config field train.memory_after={t.memory_after} needs model.kind=lm2 with a trained "
                         f"backbone (it holds LM2's .memory. parameters still while the backbone trains; "
                         f"model.kind={m.kind!r}, model.freeze_backbone={m.freeze_backbone})")
    if len(t.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in t.betas):
        raise ValueError(f"config field train.betas={t.betas!r} is invalid: two numbers in [0, 1)")
    if t.micro_batch_size and t.batch_size % t.micro_batch_size:
        raise ValueError(f"config field train.micro_batch_size={t.micro_batch_size} is invalid: it must divide "
                         f"train.batch_size={t.batch_size}")
    for name in ("interval", "val_batches", "samples", "max_new_tokens", "batch_size"):
        _positive(f"eval.{name}", getattr(e, name), zero_ok=name in ("interval", "val_batches", "samples"))
    _positive("checkpoint.interval", c.interval, zero_ok=True)
    _positive("checkpoint.keep_last", c.keep_last)
    return cfg


# model.rmt takes RMTConfig's own fields, or the short names lm2.rmt.RMTForCausalLM accepts for them.
RMT_FIELDS = ("rmt_memory_tokens", "rmt_segment_length", "num_memory_tokens", "memory_tokens", "segment_length")


def _check_model_fields(m: ModelSection) -> None:
    """model.config names LM2Config fields (a typo would otherwise be stored as an unused attribute and train the
    default); from a preset, the merged config is built here too, so its own checks run before any work."""


    for name, values, valid in (("model.config", m.config, [f.name for f in dataclasses.fields(LM2Config)]),
                                ("model.rmt", m.rmt, RMT_FIELDS)):
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ValueError(f"unknown config field {name}.{unknown[0]}: the fields of {name} are {sorted(valid)}")
    if m.init_from is None:
        try:
            LM2Config.from_preset(m.preset, **m.config)
        except (ValueError, TypeError) as err:
            raise ValueError(f"config field model.config: {str(err).splitlines()[0]}") from None


def accumulation_steps(cfg: TrainConfig, world_size: int) -> tuple[int, int]:
    """(micro batch per process, accumulation steps) such that micro * accum * world == batch_size."""
    t = cfg.train
    if t.batch_size % world_size:
        raise ValueError(f"config field train.batch_size={t.batch_size} is invalid: it must be divisible by the "
                         f"number of processes ({world_size})")
    per_rank = t.batch_size // world_size
    micro = t.micro_batch_size or per_rank
    if per_rank % micro:
        raise ValueError(f"config field train.micro_batch_size={micro} is invalid: it must divide the per-process "
                         f"batch train.batch_size / world_size = {per_rank}")
    return micro, per_rank // micro


def split_overrides(items: list[str]) -> list[tuple[str, str]]:
    """``["--train.lr", "3e-4", "--model.config.sliding_window=64"]`` as ``[("train.lr", "3e-4"), ...]``."""
    items, pairs = list(items), []
    while items:
        item = items.pop(0)
        if not item.startswith("--") or len(item) < 3:
            raise ValueError(f"override {item!r} is invalid: use --section.field VALUE (e.g. --train.lr 3e-4)")
        key, eq, text = item[2:].partition("=")
        if not eq:
            if not items:
                raise ValueError(f"override --{key} has no value")
            text = items.pop(0)
        pairs.append((key, text))
    return pairs


def read_override(key: str, text: str) -> Any:
    """An override's value: ``text`` read as YAML, and a number when it looks like one (YAML 1.1 reads "3e-4" as a
    string)."""
    value = _yaml(text, f"override --{key}")
    with contextlib.suppress(ValueError, TypeError):
        value = float(value) if isinstance(value, str) else value
    return value


def set_field(values: dict, key: str, value: Any) -> None:
    """Set the dotted field ``key`` ("model.config.sliding_window") of the nested dict ``values`` in place."""
    *path, name = key.split(".")
    node = values
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override --{key}: {part} is not a section of fields")
    node[name] = value


def apply_overrides(values: dict, items: list[str]) -> dict:
    """Set ``["--train.lr", "3e-4", "--model.config.sliding_window=64"]`` in the nested dict ``values`` (a copy);
    each value is read as YAML (``read_override``)."""
    values = copy.deepcopy(values)
    for key, text in split_overrides(items):
        set_field(values, key, read_override(key, text))
    return values


def _yaml(text: str, where: str) -> Any:
    """YAML ``text`` read safely; a syntax error is one line naming ``where`` and the place."""

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        place = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"{where} is not valid YAML{place}: {problem}") from None


def from_dict(values: dict) -> TrainConfig:
    return validate(_build(values))


def shipped_configs_dir() -> Path:
    """The folder of the configs shipped inside the package, ``lm2/configs`` (found through the package, so it is
    there in an installed wheel too; the repository's ``configs`` is a link to it)."""

    return Path(lm2.__file__).resolve().parent / "configs"


def shipped_config_names() -> list[str]:
    """The names ``lm2 train NAME`` accepts for the shipped configs (babilong-tiny, recall-tiny, ...)."""
    return sorted(p.stem for p in shipped_configs_dir().glob("*.yaml"))


def recipes_dir() -> Path:
    """The shipped training recipes (``lm2 recipe NAME``): ``lm2/configs/recipes``."""
    return shipped_configs_dir() / "recipes"


def recipe_names() -> list[str]:
    return sorted(p.stem for p in recipes_dir().glob("*.yaml"))


def resolve_config(path: str | Path) -> Path:
    """The config file to read: ``path`` when it is a file; otherwise, when it is a bare name (no folder), the
    shipped config of that name (``babilong-tiny`` or ``babilong-tiny.yaml``). A file in the current folder wins
    over a shipped config of the same name. Neither: a one-line FileNotFoundError listing the shipped configs."""
    return resolve_shipped(path, shipped_configs_dir(), "config", "lm2 train babilong-tiny")


def resolve_shipped(path: str | Path, folder: Path, what: str, example: str) -> Path:
    """``path`` when it is a file, else the YAML file of that bare name in ``folder`` (the shipped configs or
    recipes); neither: a one-line FileNotFoundError listing what ``folder`` holds."""
    path = Path(path)
    if path.is_file():
        return path
    text = str(path)
    if path.name == text and text not in (".", ".."):  # a bare name: look among the shipped files
        shipped = folder / (text if text.endswith(".yaml") else f"{text}.yaml")
        if shipped.is_file():
            return shipped
    names = sorted(p.stem for p in folder.glob("*.yaml"))
    raise FileNotFoundError(f"{what} file {path} does not exist (the shipped {what}s, usable by name as in "
                            f"`{example}`: {', '.join(names)})")


def read_config_values(path: str | Path) -> dict:
    """The nested dict of a YAML config, not yet validated; ``path`` is a file or a shipped config's bare name."""
    path = resolve_config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text (a binary file?)") from None
    values = _yaml(text, f"config file {path}")
    if values is None:
        raise ValueError(f"config file {path} is empty: give at least out_dir and the sections to change "
                         f"(see the shipped configs in {shipped_configs_dir()})")
    if not isinstance(values, dict):
        raise ValueError(f"config file {path}: a config is a YAML mapping of sections (model, data, train, ...)")
    return values


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or start from the defaults), apply overrides, build and validate it.

    ``path`` is a YAML file or the bare name of a shipped config (``resolve_config``)."""
    values = {} if path is None else read_config_values(path)
    return from_dict(apply_overrides(values, overrides or []))


def save_config(cfg: TrainConfig, path: str | Path) -> None:

    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
