"""`lm2 eval babilong | mmlu | harness | recall | perplexity` and `lm2 score babilong`: thin wrappers over
lm2.eval's library functions."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Annotated, Literal

from lm2.cli import NonNegativeInt, PositiveInt, UserError
from lm2.outdir import hold

# The flags every evaluation takes (each run_* below repeats them in its signature, with its own batch size):
COMMON_HELP = """
        model: a checkpoint folder (LM2, vanilla, RMT or any HF causal LM) or smollm2-135m
        tokenizer: override the checkpoint's tokenizer (gpt2, smollm2, folder)
        device: cpu, cuda or cuda:<index>
        batch_size: sequences per forward pass
        out: output folder (default: runs/eval/<command>/<model name>)
        no_progress: no progress bar"""


def harness_limit(text: str) -> int | float:
    """--limit: a number of documents (an integer >= 1) or a fraction of each task (0 < f < 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value >= 1 and value == int(value):
        return int(value)
    if 0 < value < 1:
        return value
    raise argparse.ArgumentTypeError(f"{text} is invalid: give a number of documents (1 or more) or a fraction "
                                     "between 0 and 1")


def _load(model: str, device: str, tokenizer: str | None, out: str | None):
    from lm2.eval.common import load_model
    from lm2.outdir import check_writable_dir

    if out is not None:  # before the model loads: a bad --out is known at once
        check_writable_dir(out, "--out")
    loaded = load_model(model, device=device, tokenizer=tokenizer)
    print(f"{loaded.name}: {loaded.kind} model ({type(loaded.model).__name__}, "
          f"{sum(p.numel() for p in loaded.model.parameters()) / 1e6:.1f}M parameters) on {device}")
    return loaded


def _with_common(func):
    """Add the common flags' help to a command's docstring."""
    func.__doc__ += COMMON_HELP
    return func


@_with_common
def run_babilong(*, model: str, tasks: str = "qa1-qa5", lengths: str = "0k,1k,2k,4k", n: PositiveInt | None = None,
                 data: str | None = None, format: Literal["auto", "finetune", "instruction"] = "auto",
                 shots: NonNegativeInt = 0, segment_length: PositiveInt = 512, max_new_tokens: PositiveInt = 16,
                 seed: NonNegativeInt = 0, resume: bool = False, overwrite: bool = False,
                 tokenizer: str | None = None, device: str = "cpu", batch_size: PositiveInt = 1,
                 out: str | None = None, no_progress: bool = False,
                 precision: Literal["fp32", "bf16"] = "fp32",
                 rule: Literal["auto", "exact", "label"] = "auto") -> int:
    """BABILong accuracy by task and length (table, CSVs, JSON, heatmap)

    Args:
        tasks: e.g. qa1-qa5, qa1,qa3 or all (qa1-qa10)
        lengths: comma-separated, from 0k 1k 2k 4k 8k 16k 32k 64k 128k (with --data: any the release holds)
        n: samples per task and length (default: 100 generated, or with --data all of them)
        data: a local copy of the official BABILong release (Hugging Face datasets RMT-team/babilong or
            RMT-team/babilong-1k-samples) instead of generated samples; layouts in README.md
        format: finetune: context, question, answer marker, exact match; instruction: task explanation (chat
            template if any), BABILong's label rule; auto: finetune for checkpoints lm2 trained on BABILong, else
            instruction
        shots: solved examples in the instruction prompt
        segment_length: tokens per call when streaming a prompt through an LM2/RMT model
        max_new_tokens: tokens generated per answer at most
        seed: seed of the test samples
        resume: keep the answers already in --out (an interrupted run, or a smaller --n with the same settings) and
            generate only the missing ones
        overwrite: delete the answers already in --out (every task and length) and start over; without it or
            --resume, a folder holding answers is refused
        precision: fp32, or bf16 (autocast; for GPUs, several times slower than fp32 on CPU)
        rule: auto: the format's (exact for finetune, label for instruction), and label for a checkpoint trained
            with data.answer_steps (its answers name a person before the room); exact or label to choose"""
    from lm2.eval.babilong import evaluate_babilong, parse_lengths, parse_tasks, results_table
    from lm2.eval.common import default_out_dir
    from lm2.precision import precision_context

    tasks, lengths = parse_tasks(tasks), parse_lengths(lengths, known=data is None)
    release = None
    if data is not None:  # a missing path, a wrong layout or a missing task is known before the model loads
        from lm2.data.babilong_release import open_release

        release = open_release(data)
        release.check(tasks, lengths, n)
    loaded = _load(model, device, tokenizer, out)
    out = out or default_out_dir(loaded, "babilong")
    with hold(out, "lm2 eval babilong"), precision_context(device, precision):
        summary = evaluate_babilong(loaded, tasks, lengths, n=n, fmt=format, shots=shots,
                                    segment_length=segment_length, batch_size=batch_size,
                                    max_new_tokens=max_new_tokens, out_dir=out, seed=seed,
                                    progress=not no_progress, resume=resume, overwrite=overwrite, data=release,
                                    rule=rule)
    counts = sorted({c for per_task in summary["samples"].values() for c in per_task.values()})
    each = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    source = f"the official release in {data}" if release is not None else "generated samples"
    print(f"\nBABILong accuracy (%), {summary['format']} format, {summary['rule']} rule, {each} samples each "
          f"({source})")
    print(results_table(summary))
    print(f"\nwritten to {out}/ (summary.json, <task>_<length>.csv, babilong.png)")
    return 0


@_with_common
def run_recall(*, model: str, segments: str = "1,8,32", n: PositiveInt = 200, seed: NonNegativeInt | None = None,
               tokenizer: str | None = None, device: str = "cpu", batch_size: PositiveInt = 50,
               out: str | None = None, no_progress: bool = False, gap: NonNegativeInt | None = None,
               query_gap: NonNegativeInt | None = None, precision: Literal["fp32", "bf16"] = "fp32") -> int:
    """the memory diagnostic: associative recall across distractor segments

    Args:
        segments: numbers of distractor segments between the key-value pairs and the queries, e.g. 1,8,32
        n: test samples per number of segments
        seed: seed of the test samples (default: the test seed)
        gap: filler words between a key and its value, 0 up to this (default: data.recall.gap of the model's
            training)
        query_gap: marker words between a queried key and its answer (default: data.recall.query_gap of the
            model's training; above 0 only for a model trained with markers, whose vocabulary has one)
        precision: fp32, or bf16 (autocast; for GPUs, several times slower than fp32 on CPU)"""
    from lm2.eval.common import default_out_dir
    from lm2.eval.recall import evaluate_recall, parse_segments, recall_spec_of
    from lm2.precision import precision_context

    segments = parse_segments(segments)  # errors before loading the model
    loaded = _load(model, device, tokenizer, out)
    spec = recall_spec_of(loaded.path)  # a model not trained on the diagnostic is refused before anything is written
    given = {name: value for name, value in (("gap", gap), ("query_gap", query_gap)) if value is not None}
    flags = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in given.items())
    if query_gap and not spec.query_gap:
        raise ValueError(f"{flags}: the model was trained without answer markers (data.recall.query_gap 0), so its "
                         "vocabulary has none; give --query-gap 0 or a model trained with a query_gap")
    try:
        spec = dataclasses.replace(spec, **given)
    except ValueError as err:
        raise ValueError(f"{flags}: {err}") from None
    out = out or default_out_dir(loaded, "recall")
    with hold(out, "lm2 eval recall"), precision_context(device, precision):
        summary = evaluate_recall(loaded, segments, n=n, seed=seed, batch_size=batch_size, out_dir=out,
                                  progress=not no_progress, spec=spec)
    print(f"written to {out}/recall.json and recall.png ({summary['pairs']} pairs, {summary['queries']} queries, "
          f"gap 0-{spec.gap}, query gap {spec.query_gap}, chance {summary['chance']:.1f}%, seed {summary['seed']})")
    for d, e in summary["errors"].items():
        print(f"  {d} segments: {summary['accuracy'][d]:.1f}% right, {e['other_pair']:.1f}% another pair's value "
              f"(stored, not bound to its key), {e['unstated']:.1f}% unstated; by query "
              + " / ".join(f"{a:.0f}" for a in e["by_query"]))
    print(f"recall accuracy (%), {n} samples each: " + ", ".join(
        f"{d} segments {acc:.1f}" for d, acc in summary["accuracy"].items()))
    return 0


@_with_common
def run_mmlu(*, model: str, shots: NonNegativeInt = 0, subjects: list[str] | None = None,
             form: Literal["letter", "cloze"] = "letter", limit: PositiveInt | None = None, reuse: bool = False,
             resume: bool = False, check_lm_eval: bool = False, tokenizer: str | None = None, device: str = "cpu",
             batch_size: PositiveInt = 8, out: str | None = None, no_progress: bool = False) -> int:
    """MMLU through lm-evaluation-harness, by category and level (LM2 paper, Table 2)

    Args:
        shots: solved examples (the subject's first other questions)
        subjects: subjects (snake_case); default: all 57
        form: letter: log-likelihood of ' A'..' D'; cloze: each choice's text, per-character normalised
        limit: first N questions of each subject
        reuse: take the scores of an earlier run in --out with the same settings instead of scoring again (its
            table printed again)
        resume: keep the subjects an interrupted run in --out finished and score only the rest (a run that
            finished is taken as it is, as with --reuse)
        check_lm_eval: gone (lm2 eval mmlu scores through lm-evaluation-harness itself): an error"""
    from lm2.eval.common import default_out_dir
    from lm2.eval.lm_eval_adapter import require_lm_eval
    from lm2.eval.mmlu import evaluate_mmlu, table2

    if check_lm_eval:
        raise UserError("--check-lm-eval is gone: lm2 eval mmlu now scores through lm-evaluation-harness itself, so "
                        "there is nothing to check against; drop the flag")
    if not reuse:
        require_lm_eval()  # before the model loads
    loaded = _load(model, device, tokenizer, out)
    out = out or default_out_dir(loaded, "mmlu")
    with hold(out, "lm2 eval mmlu"):
        summary = evaluate_mmlu(loaded, shots=shots, subjects=subjects, form=form, limit=limit,
                                batch_size=batch_size, out_dir=out, progress=not no_progress, reuse=reuse,
                                resume=resume)
    print()
    print(table2(summary, f"MMLU accuracy (%), {form} form, {shots}-shot, {loaded.name}"))
    print(f"{summary['seconds_per_question']:.3f} s per question; written to {out}/")
    return 0


@_with_common
def run_harness(*, model: str, tasks: str, num_fewshot: NonNegativeInt | None = None,
                limit: Annotated[float, harness_limit] | None = None, include_path: str | None = None,
                log_samples: bool = False, apply_chat_template: bool = False, gen_kwargs: str | None = None,
                tokenizer: str | None = None, device: str = "cpu", batch_size: PositiveInt = 8,
                out: str | None = None, no_progress: bool = False) -> int:
    """any lm-evaluation-harness task or group (arc_easy, hellaswag, ...)

    Args:
        tasks: comma-separated lm-eval task or group names, globs allowed (`lm-eval ls tasks` lists them)
        num_fewshot: solved examples per prompt (default: each task's own)
        limit: the first N documents of each task, or a fraction below 1 (for a quick look, not a score)
        include_path: a folder of task YAML files (your own tasks, or tasks over local data files)
        log_samples: also write each document's prompt, responses and scores (samples_<task>.jsonl)
        apply_chat_template: prompts through the tokenizer's chat template
        gen_kwargs: generation settings of generate_until tasks, e.g. max_gen_toks=64,temperature=0"""
    from pathlib import Path

    from lm2.eval.common import default_out_dir, quiet_lm_eval
    from lm2.eval.lm_eval_adapter import evaluate_harness, match_tasks, task_list, task_manager

    requested = task_list(tasks)
    manager = task_manager(include_path)  # unknown tasks are known before the model loads
    names = match_tasks(manager, requested)
    loaded = _load(model, device, tokenizer, out)
    out = out or default_out_dir(loaded, "harness")
    with hold(out, "lm2 eval harness"), quiet_lm_eval(None if not no_progress else Path(out) / "lm_eval.log"):
        results = evaluate_harness(loaded, names, num_fewshot=num_fewshot, limit=limit, batch_size=batch_size,
                                   include_path=include_path, log_samples=log_samples,
                                   apply_chat_template=apply_chat_template, gen_kwargs=gen_kwargs, out_dir=out,
                                   manager=manager)
    from lm_eval.utils import make_table

    print(make_table(results))
    if results.get("groups"):
        print(make_table(results, "groups"))
    print(f"written to {out}/results.json" + (" and samples_<task>.jsonl" if log_samples else ""))
    return 0


@_with_common
def run_perplexity(*, model: str, data: str = "books", seq_len: PositiveInt = 4096, max_tokens: NonNegativeInt = 65536,
                   segment_length: PositiveInt = 512, bin_size: PositiveInt | None = None,
                   tokenizer: str | None = None, device: str = "cpu", batch_size: PositiveInt = 1,
                   out: str | None = None, no_progress: bool = False,
                   precision: Literal["fp32", "bf16"] = "fp32") -> int:
    """token-level perplexity and loss by position (with a plot)

    Args:
        data: books (the held-out books), a .txt/.jsonl/.parquet file or folder, or an HF dataset
        seq_len: tokens per window (streamed for LM2/RMT)
        max_tokens: stop after this many tokens (0: all)
        segment_length: tokens per call when streaming through an LM2/RMT model
        bin_size: positions per point of the curve (seq_len/64)
        precision: fp32, or bf16 (autocast; for GPUs, several times slower than fp32 on CPU)"""
    from lm2.eval.common import default_out_dir
    from lm2.eval.perplexity import evaluate_perplexity, format_result
    from lm2.precision import precision_context

    loaded = _load(model, device, tokenizer, out)
    out = out or default_out_dir(loaded, "perplexity")
    with hold(out, "lm2 eval perplexity"), precision_context(device, precision):
        result = evaluate_perplexity(loaded, data, seq_len=seq_len, max_tokens=max_tokens or None,
                                     segment_length=segment_length, bin_size=bin_size, batch_size=batch_size,
                                     out_dir=out, progress=not no_progress)
    print(format_result(result))
    print(f"written to {out}/ (perplexity.json, loss_by_position.png)")
    return 0


def run_score_babilong(csv: str, /, *, task: str, rule: Literal["label", "exact"] = "label") -> int:
    """accuracy of a CSV with columns target, output, question

    Args:
        csv: CSV file of model outputs
        task: qa1 ... qa10
        rule: label: BABILong's published rule for generated text; exact: exact match
    """
    from lm2.eval.babilong_scoring import score_csv

    accuracy = score_csv(csv, task, rule=rule)
    print(f"{task}: {accuracy:.2f}% ({rule} rule)")
    return 0
