"""BABILong evaluation: greedy answers to bAbI questions hidden in long book text, scored as the benchmark does.

For each task and length the test samples come from ``lm2.data.babilong.build_samples`` (split "test"), or from a
local copy of the official release (``data``: ``lm2.data.babilong_release``, the same sample type); each prompt is
tokenized and answered greedily (a few tokens, stopping at eos or at a line break after the answer):

* streaming models (LM2, vanilla, RMT) get the prompt ``segment_length`` tokens at a time with their state
  carried, then decode token by token with the same state: memory use is flat, so a 128k-token sample runs
  on a CPU with a small model;
* any other Hugging Face causal LM gets the prompt in one call through ``generate()``; a prompt longer than its
  ``max_position_embeddings`` is an error, raised before any work for a length that cannot fit.

Two formats (``lm2.data.babilong``): "finetune" (context, question, answer marker: what lm2's trainer teaches)
scored by exact match, and "instruction" (task explanation, optional solved examples, the chat template if the
tokenizer has one) scored by BABILong's label rule. Outputs, in ``out_dir``: ``<task>_<length>.csv`` with the
columns of the published BABILong predictions (target, output, question), ``summary.json`` (accuracy per task
and length, the qa1-qa5 mean per length, the aggregate over lengths >= 8k) and ``babilong.png`` (heatmap).
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from lm2.data.babi import TASKS, check_task
from lm2.data.babilong import LENGTHS, build_samples, finetune_example, instruction_prompt, length_name, parse_length
from lm2.data.babilong_release import BabilongRelease, open_release
from lm2.eval.babilong_scoring import exact_match, label_score, read_predictions
from lm2.eval.common import LoadedModel, appended_records, write_json
from lm2.generate import decode_one_token, prefill
from lm2.model_facts import check_fits, eos_token_ids, is_streaming, max_positions, padding_multiple
from lm2.viz.babilong import format_table, plot_heatmap

FORMATS = ("auto", "finetune", "instruction")
RULES = {"finetune": "exact", "instruction": "label"}  # the scoring rule of each format
HEADLINE_TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")  # BABILong's headline number is their mean
LONG_FROM = 8000  # the "8k and more" aggregate of the LM2 paper
CSV_COLUMNS = ("target", "output", "question")
ANSWER_FILE = re.compile(r"qa\d+_\d+k\.(csv|partial\.jsonl)")  # what a run writes per task and length


# ----------------------------------------------------------------------------- arguments


def parse_tasks(spec: str | Sequence[str]) -> list[str]:
    """Task names from "qa1-qa5", "qa1,qa3,qa7", "1-5", "all" (qa1-qa10), or a list; unknown tasks raise."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.lower() == "all":
            names = list(TASKS)
        elif "-" in item:
            first, last = (check_task(part.strip()) for part in item.split("-", 1))
            i, j = TASKS.index(first), TASKS.index(last)
            if i > j:
                raise ValueError(f"task range {item!r} runs backwards: write it as {last}-{first}")
            names = list(TASKS[i : j + 1])
        else:
            names = [check_task(item)]
        out += [n for n in names if n not in out]
    if not out:
        raise ValueError(f"no tasks in {spec!r}: give e.g. qa1-qa5 or qa1,qa2")
    return out


def parse_lengths(spec: str | Sequence[str], known: bool = True) -> list[str]:
    """Length names from "0k,1k,4k" or a list; each must be one of BABILong's lengths (0k ... 128k) unless
    ``known`` is False (the official release also has 256k, 512k and 1M)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        name = length_name(parse_length(item))  # ValueError for text that is no length at all
        if known and name not in LENGTHS:
            raise ValueError(f"unknown BABILong length {item!r}: choose from {', '.join(LENGTHS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError(f"no lengths in {spec!r}: give e.g. 0k,1k,2k,4k")
    return sorted(out, key=parse_length)


def resolve_format(loaded: LoadedModel, fmt: str) -> str:
    """"auto": "finetune" for a checkpoint lm2's trainer fine-tuned on BABILong (its train_config.yaml says
    data.task: babilong), else "instruction"."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    return "finetune" if _trained_data(loaded).get("task") == "babilong" else "instruction"


def _trained_data(loaded: LoadedModel) -> dict:
    """The data section of the checkpoint's train_config.yaml ({} when there is none or it cannot be read)."""
    config_file = loaded.path / "train_config.yaml"
    if not config_file.is_file():
        return {}
    try:
        data = (yaml.safe_load(config_file.read_text()) or {}).get("data", {})
    except (yaml.YAMLError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_rule(loaded: LoadedModel, fmt: str, rule: str = "auto") -> str:
    """"auto": the format's rule (exact match after the answer marker for "finetune", BABILong's label rule for
    "instruction"), except that a checkpoint trained with data.answer_steps, whose answers name a person before
    the room ("Mary kitchen"), is scored by the label rule."""
    if rule not in ("auto", *RULES.values()):
        raise ValueError(f"unknown scoring rule {rule!r}: choose auto, exact or label")
    if rule != "auto":
        return rule
    return "label" if fmt == "finetune" and _trained_data(loaded).get("answer_steps") else RULES[fmt]


# ----------------------------------------------------------------------------- prompts


def prompt_ids(sample, tokenizer: Any, fmt: str, shots: int = 0) -> list[int]:
    """The token ids the model continues with its answer."""
    if fmt == "finetune":
        ids, labels = finetune_example(sample, tokenizer)
        first = next(i for i, label in enumerate(labels) if label != -100)  # where the answer starts
        return list(ids[:first])
    text = instruction_prompt(sample, tokenizer, examples=shots)
    templated = bool(getattr(tokenizer, "chat_template", None))  # the template already wrote any bos token
    return list(tokenizer(text, add_special_tokens=not templated, verbose=False)["input_ids"])


def answer_done(text: str) -> bool:
    """An answer ends at the first line break after some text."""
    return "\n" in text.lstrip()


def clean_answer(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


# ----------------------------------------------------------------------------- greedy decoding


def _left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, longest - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        mask[row, longest - len(p) :] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def greedy_streaming(model, prompts: Sequence[Sequence[int]], segment_length: int, max_new_tokens: int,
                     eos: set[int], pad_id: int, done: Callable[[list[int]], bool], device=None,
                     on_tokens: Callable[[int], None] | None = None) -> list[list[int]]:
    """Greedy answers of a streaming model: each prompt is fed ``segment_length`` tokens at a time with the
    state carried, then decoded one token at a time from the same state.

    A batch is left-padded with the padding masked out. Padding shifts a row's absolute positions, so it leaves
    the answers unchanged only when it is a multiple of ``padding_multiple(model)`` (``plan_batches`` groups
    prompts that way).
    """
    device = device if device is not None else next(model.parameters()).device
    ids, mask = _left_pad(prompts, pad_id, device)
    padded = bool((mask == 0).any())
    progress = None if on_tokens is None else (lambda cache, logits, fed: on_tokens(fed))
    state, logits = prefill(model, ids, None, segment_length, mask if padded else None, progress)
    tokens = logits.argmax(-1)  # (B,)
    answers: list[list[int]] = [[] for _ in prompts]
    finished = [False] * len(prompts)
    ones = torch.ones((len(prompts), 1), dtype=torch.long, device=device) if padded else None
    for step in range(max_new_tokens):
        for row, token in enumerate(tokens.tolist()):
            if finished[row]:
                continue
            if token in eos:
                finished[row] = True
            else:
                answers[row].append(token)
                finished[row] = done(answers[row])
        if all(finished) or step == max_new_tokens - 1:
            break
        tokens, state = decode_one_token(model, tokens, state, attention_mask=ones)
    return answers


@torch.no_grad()
def greedy_hf(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos: set[int], pad_id: int,
              done: Callable[[list[int]], bool], device=None) -> list[list[int]]:
    """Greedy answers of a non-streaming causal LM through ``generate()`` (left-padded batch, KV cache)."""
    device = device if device is not None else next(model.parameters()).device
    ids, mask = _left_pad(prompts, pad_id, device)
    width = ids.shape[1]

    class AnswerDone(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.tensor([done(row[width:].tolist()) for row in input_ids], device=input_ids.device)

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=sorted(eos) or None,
                              pad_token_id=pad_id)
    out = model.generate(ids, attention_mask=mask, generation_config=config,
                         stopping_criteria=StoppingCriteriaList([AnswerDone()]))
    answers = []
    for row in out[:, width:].tolist():
        kept = []
        for token in row:
            if token in eos:
                break
            kept.append(token)
        answers.append(kept)
    return answers


def generate_answers(loaded: LoadedModel, prompts: Sequence[Sequence[int]], max_new_tokens: int = 16,
                     segment_length: int = 512, on_tokens: Callable[[int], None] | None = None) -> list[str]:
    """Decoded greedy answers (cut at the first line break) of a batch of prompts."""
    model, tokenizer = loaded.model, loaded.tokenizer
    eos = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def done(tokens: list[int]) -> bool:
        return answer_done(tokenizer.decode(tokens, skip_special_tokens=True))

    if is_streaming(model):
        out = greedy_streaming(model, prompts, segment_length, max_new_tokens, eos, pad_id, done,
                               on_tokens=on_tokens)
    else:
        check_fits(model, max(len(p) for p in prompts) + max_new_tokens, "a BABILong prompt plus its answer")
        out = greedy_hf(model, prompts, max_new_tokens, eos, pad_id, done)
        if on_tokens is not None:
            on_tokens(sum(len(p) for p in prompts))
    return [clean_answer(tokenizer.decode(tokens, skip_special_tokens=True)) for tokens in out]


def answer_samples(loaded: LoadedModel, samples: Sequence[Any], fmt: str = "finetune", batch_size: int = 20,
                   max_new_tokens: int = 4, segment_length: int = 128) -> list[str]:
    """Greedy answers to ``samples``, in their order, ``batch_size`` prompts at a time (for probes and scripts;
    ``evaluate_babilong`` plans its own batches and saves as it goes)."""
    answers: list[str] = []
    for i in range(0, len(samples), batch_size):
        prompts = [prompt_ids(s, loaded.tokenizer, fmt) for s in samples[i: i + batch_size]]
        answers += generate_answers(loaded, prompts, max_new_tokens, segment_length)
    return answers


def plan_batches(lengths: Sequence[int], batch_size: int, multiple: int = 1) -> list[list[int]]:
    """Batches of prompt indices, longest first so that a batch needs little padding. With ``multiple`` > 1 a
    batch only holds prompts whose lengths agree modulo ``multiple``: their left padding is then a multiple of
    it, which leaves a streaming model's answers exactly those of a batch of one (see ``padding_multiple``)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size {batch_size!r} is invalid: it must be a positive integer")
    groups: dict[int, list[int]] = {}
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        groups.setdefault(lengths[i] % multiple, []).append(i)
    batches = [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]
    return sorted(batches, key=lambda b: -lengths[b[0]])


# ----------------------------------------------------------------------------- scoring and summaries


def score(outputs: Sequence[str], samples: Sequence[Any], rule: str) -> list[bool]:
    if rule == "exact":
        return [exact_match(o, s.target) for o, s in zip(outputs, samples)]
    if rule == "label":
        return [label_score(o, s.target, s.question, s.task) for o, s in zip(outputs, samples)]
    raise ValueError(f"unknown scoring rule {rule!r}: use 'label' or 'exact'")


def write_predictions(path: str | os.PathLike, samples: Sequence[Any], outputs: Sequence[str]) -> Path:
    """A CSV in the published BABILong predictions' format: target, output, question."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for sample, output in zip(samples, outputs):
            writer.writerow((sample.target, output, sample.question))
    return path


# ----------------------------------------------------------------------------- resuming

# The settings a resumed run must share with the answers already there (and segment_length for a streaming model).
RESUME_SETTINGS = ("model", "data", "format", "rule", "shots", "seed", "max_new_tokens")


def partial_path(out_dir: Path, task: str, length: str) -> Path:
    """Where answers are appended while a task and length runs (removed once its CSV is written)."""
    return out_dir / f"{task}_{length}.partial.jsonl"


def answer_files(out_dir: Path) -> list[Path]:
    """The answer files of earlier runs in ``out_dir``: ``<task>_<length>.csv`` and ``.partial.jsonl``."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir() if ANSWER_FILE.fullmatch(p.name))


def claim_out_dir(out_dir: Path, overwrite: bool) -> None:
    """Before a fresh (not resumed) run: refuse a folder that already holds answers, so that nothing saved is
    lost and every answer in a folder was made with the settings in its summary.json (what ``--resume``
    checks); with ``overwrite``, delete those answers first."""
    existing = answer_files(out_dir)
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing[:4])
        if len(existing) > 4:
            names += f" and {len(existing) - 4} more"
        raise ValueError(f"{out_dir} already holds answers ({names}): add --resume to keep them and generate only "
                         "the missing ones (same settings), --overwrite to delete them and start over, or use a "
                         "new --out")
    for path in existing:
        path.unlink()


def check_resumable(out_dir: Path, summary: dict, streaming: bool) -> None:
    """Raise ValueError unless ``out_dir``'s summary.json was made with the settings in ``summary`` (those that
    change answers). A folder without one has nothing to resume and passes."""
    path = out_dir / "summary.json"
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot resume from {out_dir}: its summary.json is not valid JSON ({err}); "
                         "evaluate into a new --out") from None
    keys = RESUME_SETTINGS + (("segment_length",) if streaming else ())
    differ = [f"{k} {previous.get(k)!r} there, {summary[k]!r} now" for k in keys if previous.get(k) != summary[k]]
    if differ:
        raise ValueError(f"cannot resume from {out_dir}: its answers were made with other settings "
                         f"({'; '.join(differ)}); use the same settings or a new --out")


def saved_answers(out_dir: Path, task: str, length: str, samples: Sequence[Any]) -> dict[int, str]:
    """Answers already in ``out_dir`` for ``samples`` (sample index -> output): the CSV's rows (row i answers
    sample i), then the partial file's records. Raises ValueError if a saved answer belongs to another sample
    or the CSV holds more samples than asked for (rewriting it would drop them)."""
    found: dict[int, tuple[str, str, str]] = {}  # index -> (target, question, output)
    csv_path = out_dir / f"{task}_{length}.csv"
    if csv_path.is_file():
        try:
            rows = read_predictions(csv_path, CSV_COLUMNS)
        except ValueError as err:
            raise ValueError(f"cannot resume: {err}") from None
        found = {i: (row["target"], row["question"], row["output"]) for i, row in enumerate(rows)}
        if len(found) > len(samples):
            raise ValueError(f"cannot resume from {csv_path}: it holds {len(found)} answers, more than --n "
                             f"{len(samples)}; use --n {len(found)} or more, or a new --out")
    for record in appended_records(partial_path(out_dir, task, length)):
        if record["index"] < len(samples):
            found[record["index"]] = (record["target"], record["question"], record["output"])
    for i, (target, question, _) in found.items():  # every index is below len(samples) here
        if (target, question) != (samples[i].target, samples[i].question):
            raise ValueError(f"cannot resume {task} {length} from {out_dir}: saved answer {i} is for another "
                             f"sample (question {question!r}, target {target!r}; sample {i} is "
                             f"{samples[i].question!r}, {samples[i].target!r}); use a new --out")
    return {i: output for i, (_, _, output) in found.items()}


def summarize(accuracy: dict[str, dict[str, float]], tasks: Sequence[str], lengths: Sequence[str]) -> dict:
    """Means over tasks and lengths: the qa1-qa5 mean per length (when all five were run), the mean over the
    tasks run, and per task the aggregate over lengths >= 8k (the LM2 paper's "8k and more")."""
    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    done_lengths = [n for n in lengths if all(n in accuracy.get(t, {}) for t in tasks)]
    out: dict[str, Any] = {
        "mean": {n: mean(accuracy[t][n] for t in tasks) for n in done_lengths},
    }
    if all(t in tasks for t in HEADLINE_TASKS):
        out["mean_qa1_qa5"] = {n: mean(accuracy[t][n] for t in HEADLINE_TASKS) for n in done_lengths}
    long = [n for n in lengths if parse_length(n) >= LONG_FROM]
    if long:
        per_task = {t: mean(accuracy.get(t, {}).get(n) for n in long) for t in tasks}
        per_task = {t: v for t, v in per_task.items() if v is not None}
        if per_task:
            out["aggregate_8k_plus"] = dict(per_task, mean=mean(per_task.values()))
            if all(t in per_task for t in HEADLINE_TASKS):
                out["aggregate_8k_plus"]["mean_qa1_qa5"] = mean(per_task[t] for t in HEADLINE_TASKS)
    return out


def results_table(summary: dict) -> str:
    """The terminal table of a summary (tasks x lengths, the means, the >= 8k aggregate)."""
    tasks, lengths = summary["tasks"], summary["lengths"]
    extra_rows = {}
    if "mean_qa1_qa5" in summary:
        extra_rows["qa1-qa5"] = summary["mean_qa1_qa5"]
    if list(tasks) != list(HEADLINE_TASKS) or not extra_rows:
        extra_rows["mean"] = summary["mean"]
    extra_column = None
    if "aggregate_8k_plus" in summary:
        agg = dict(summary["aggregate_8k_plus"])
        agg["qa1-qa5"] = agg.get("mean_qa1_qa5")
        extra_column = (">=8k", agg)
    return format_table(summary["accuracy"], tasks, lengths, extra_rows, extra_column)


def majority_baseline(out_dir: str | os.PathLike) -> dict[str, float]:
    """Per task, the accuracy (%) of the best constant answer: always giving the task's most frequent target,
    counted over every finished ``<task>_<length>.csv`` in ``out_dir``. A floor for a model that answers without
    reading, fairer than 1 / (number of places) when a task's answers are not all places or not equally likely
    (qa2, qa5). Chosen with the targets in view, it is an upper bound on such guessing: with 100 samples per task,
    sampling noise alone lifts the largest of six equal shares to about 21%."""
    targets: dict[str, Counter] = {}
    for path in sorted(Path(out_dir).glob("qa*_*k.csv")):
        task = path.name.split("_")[0]
        targets.setdefault(task, Counter()).update(row["target"] for row in read_predictions(path, ["target"]))
    if not targets:
        raise FileNotFoundError(f"no <task>_<length>.csv answer files in {out_dir}: run `lm2 eval babilong` there "
                                "first")
    return {task: 100.0 * count.most_common(1)[0][1] / sum(count.values()) for task, count in sorted(targets.items())}


# ----------------------------------------------------------------------------- the evaluation


def evaluate_babilong(loaded: LoadedModel, tasks: Sequence[str] = HEADLINE_TASKS,
                      lengths: Sequence[str] = ("0k", "1k", "2k", "4k"), n: int | None = None, fmt: str = "auto",
                      shots: int = 0, segment_length: int = 512, batch_size: int = 1, max_new_tokens: int = 16,
                      out_dir: str | os.PathLike | None = None, seed: int = 0, progress: bool = True,
                      resume: bool = False, overwrite: bool = False, data: Any = None, rule: str = "auto") -> dict:
    """Evaluate a loaded model on BABILong; returns the summary (also written to ``out_dir``, with the CSVs,
    and the heatmap).

    ``n`` samples per task and length: by default 100 generated ones, or with ``data`` (a folder holding the
    official release, or its ``BabilongRelease``) every sample there (``n``: the first ``n``). Accuracies are in
    percent. ``shots`` solved examples go into the instruction prompt (instruction format
    only). ``batch_size`` > 1 left-pads prompts of similar length together, and for a model with memory only
    prompts whose padding leaves its answers unchanged (``plan_batches``).

    With ``out_dir``, each task and length's answers are appended to ``<task>_<length>.partial.jsonl`` as they
    come (replaced by the CSV when the pair is done). ``resume`` takes the answers already in ``out_dir`` (CSVs
    of an earlier, possibly smaller ``n``, and partial files of an interrupted run) instead of generating them
    again, after checking that they were made with the same settings and for the same samples; the test samples
    are prefix-stable, so raising ``n`` only adds samples. ``seconds`` then covers the new answers only.
    Without ``resume``, a folder that already holds answers is refused unless ``overwrite`` (which deletes them
    first, every task and length), so that one folder never mixes answers made with different settings.
    ``rule``: "exact", "label" or "auto" (``resolve_rule``).
    """
    release = data if isinstance(data, BabilongRelease) or data is None else open_release(data)
    tasks, lengths = parse_tasks(tasks), parse_lengths(lengths, known=release is None)
    if release is not None:
        release.check(tasks, lengths, n)
    elif n is None:
        n = 100
    fmt = resolve_format(loaded, fmt)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"--n {n!r} is invalid: it must be a positive number of samples")

    def test_samples(task: str, length: str, count: int | None) -> list:
        if release is None:
            return build_samples(task, length, count, split="test", seed=seed)
        return release.samples(task, length, count)

    if shots < 0:
        raise ValueError(f"--shots {shots} is invalid: it must be 0 or more")
    if shots and fmt == "finetune":
        raise ValueError("--shots needs the instruction format: a fine-tuned model answers without examples")
    for name, value in (("--max-new-tokens", max_new_tokens), ("--batch-size", batch_size),
                        ("--segment-length", segment_length)):
        if value < 1:
            raise ValueError(f"{name} {value} is invalid: it must be a positive integer")
    rule = resolve_rule(loaded, fmt, rule)
    limit = max_positions(loaded.model)
    if limit is not None:  # fail before any work, measuring one prompt of each length in the model's tokens
        too_long = []
        for name in lengths:
            probe = test_samples(tasks[0], name, 1)[0]
            needed = len(prompt_ids(probe, loaded.tokenizer, fmt, shots)) + max_new_tokens
            if parse_length(name) > limit or needed > limit:
                too_long.append(name)
        if too_long:
            raise ValueError(
                f"{type(loaded.model).__name__} takes at most {limit} positions (max_position_embeddings) and "
                f"cannot stream, so BABILong lengths {', '.join(too_long)} do not fit; drop them from --lengths "
                "or evaluate an LM2/RMT model, which streams"
            )

    out_dir = Path(out_dir) if out_dir is not None else None
    summary: dict[str, Any] = {
        "model": str(loaded.path), "model_kind": loaded.kind,
        "data": str(release.root.resolve()) if release is not None else None, "format": fmt, "rule": rule,
        "shots": shots, "n": n, "seed": seed, "segment_length": segment_length, "batch_size": batch_size,
        "max_new_tokens": max_new_tokens, "device": str(next(loaded.model.parameters()).device),
        "tasks": tasks, "lengths": lengths, "accuracy": {}, "samples": {}, "seconds": {},
    }
    if resume and overwrite:
        raise ValueError("--resume keeps the answers in --out and --overwrite deletes them: choose one")
    if resume:
        if out_dir is None:
            raise ValueError("resuming needs the output folder of the earlier run (--out)")
        check_resumable(out_dir, summary, streaming=is_streaming(loaded.model))
        summary["reused"] = {}
    elif out_dir is not None:
        claim_out_dir(out_dir, overwrite)
    if out_dir is not None:  # the settings go down first: a run stopped in its first task can be resumed safely
        write_json(out_dir / "summary.json", summary)
    bar = tqdm(total=len(tasks) * len(lengths) * n if n is not None else None, unit="sample",
               disable=not progress, dynamic_ncols=True)
    for task in tasks:
        for length in lengths:
            bar.set_description(f"{task} {length}")
            start = time.perf_counter()
            samples = test_samples(task, length, n)
            # int32 arrays: 100 prompts of 128k tokens as Python lists would take about half a gigabyte.
            prompts = [np.asarray(prompt_ids(s, loaded.tokenizer, fmt, shots), dtype=np.int32) for s in samples]
            check_fits(loaded.model, max(len(p) for p in prompts) + max_new_tokens,
                       f"the longest {task} {length} prompt plus its answer")
            saved = saved_answers(out_dir, task, length, samples) if resume else {}
            outputs: list[str] = [saved.get(i, "") for i in range(len(samples))]
            todo = [i for i in range(len(samples)) if i not in saved]
            correct = sum(score(list(saved.values()), [samples[i] for i in saved], rule))
            answered = len(saved)
            if resume:
                summary["reused"].setdefault(task, {})[length] = answered
            bar.update(answered)
            partial = None
            if out_dir is not None and todo:
                out_dir.mkdir(parents=True, exist_ok=True)
                partial = open(partial_path(out_dir, task, length), "a" if resume else "w", encoding="utf-8")
            try:
                for chunk in plan_batches([len(prompts[i]) for i in todo], batch_size, padding_multiple(loaded.model)):
                    chunk = [todo[j] for j in chunk]
                    batch = [prompts[i].tolist() for i in chunk]
                    answers = generate_answers(loaded, batch, max_new_tokens, segment_length)
                    for i, answer in zip(chunk, answers):
                        outputs[i] = answer
                        if partial is not None:
                            record = {"index": i, "target": samples[i].target, "question": samples[i].question,
                                      "output": answer}
                            partial.write(json.dumps(record) + "\n")
                    if partial is not None:
                        partial.flush()
                    correct += sum(score(answers, [samples[i] for i in chunk], rule))
                    answered += len(chunk)
                    bar.update(len(chunk))
                    bar.set_postfix(acc=f"{100 * correct / answered:.0f}")
            finally:
                if partial is not None:
                    partial.close()
            accuracy = 100.0 * sum(score(outputs, samples, rule)) / len(samples)
            summary["accuracy"].setdefault(task, {})[length] = accuracy
            summary["samples"].setdefault(task, {})[length] = len(samples)
            summary["seconds"].setdefault(task, {})[length] = round(time.perf_counter() - start, 2)
            if out_dir is not None:
                write_predictions(out_dir / f"{task}_{length}.csv", samples, outputs)
                partial_path(out_dir, task, length).unlink(missing_ok=True)
                write_json(out_dir / "summary.json", {**summary, **summarize(summary["accuracy"], tasks, lengths)})
    bar.close()
    summary.update(summarize(summary["accuracy"], tasks, lengths))
    if out_dir is not None:
        write_json(out_dir / "summary.json", summary)
        source = "official release, " if release is not None else ""
        title = f"BABILong, {loaded.name} ({source}{fmt} format, {rule} rule, n={n or 'all'})"
        plot_heatmap(summary["accuracy"], tasks, lengths, out_dir / "babilong.png", title)
    return summary
