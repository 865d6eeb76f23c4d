"""`lm2 eval babilong | mmlu | harness | recall | perplexity`: thin wrappers over lm2.eval's library functions."""

from __future__ import annotations

import argparse

from lm2.cli import nonnegative_int, positive_int
from lm2.outdir import hold


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="evaluate a model: BABILong, MMLU, any lm-eval task, perplexity")
    ev_sub = ev.add_subparsers(dest="eval_command", metavar="SUBCOMMAND")
    ev_sub.required = True

    def common(p: argparse.ArgumentParser, batch_size: int) -> None:
        p.add_argument("--model", required=True,
                       help="a checkpoint folder (LM2, vanilla, RMT or any HF causal LM) or smollm2-135m")
        p.add_argument("--tokenizer", default=None, help="override the checkpoint's tokenizer (gpt2, smollm2, folder)")
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:<index>")
        p.add_argument("--batch-size", type=positive_int, default=batch_size)
        p.add_argument("--out", default=None, help="output folder (default: runs/eval/<command>/<model name>)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = ev_sub.add_parser("babilong", help="BABILong accuracy by task and length (table, CSVs, JSON, heatmap)")
    common(p, batch_size=1)
    p.add_argument("--tasks", default="qa1-qa5", help="e.g. qa1-qa5, qa1,qa3 or all (qa1-qa10)")
    p.add_argument("--lengths", default="0k,1k,2k,4k",
                   help="comma-separated, from 0k 1k 2k 4k 8k 16k 32k 64k 128k (with --data: any the release holds)")
    p.add_argument("--n", type=positive_int, default=None,
                   help="samples per task and length (default: 100 generated, or with --data all of them)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="a local copy of the official BABILong release (Hugging Face datasets RMT-team/babilong or "
                        "RMT-team/babilong-1k-samples) instead of generated samples; layouts in README.md")
    p.add_argument("--format", default="auto", choices=["auto", "finetune", "instruction"],
                   help="finetune: context, question, answer marker, exact match; instruction: task explanation "
                        "(chat template if any), BABILong's label rule; auto: finetune for checkpoints lm2 trained "
                        "on BABILong, else instruction")
    p.add_argument("--shots", type=nonnegative_int, default=0, help="solved examples in the instruction prompt")
    p.add_argument("--segment-length", type=positive_int, default=512,
                   help="tokens per call when streaming a prompt through an LM2/RMT model")
    p.add_argument("--max-new-tokens", type=positive_int, default=16)
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the test samples")
    p.add_argument("--resume", action="store_true",
                   help="keep the answers already in --out (an interrupted run, or a smaller --n with the same "
                        "settings) and generate only the missing ones")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the answers already in --out (every task and length) and start over; without it "
                        "or --resume, a folder holding answers is refused")
    p.set_defaults(func=run_babilong)

    p = ev_sub.add_parser("mmlu", help="MMLU through lm-evaluation-harness, by category and level (LM2 paper, "
                                       "Table 2)")
    common(p, batch_size=8)
    p.add_argument("--shots", type=nonnegative_int, default=0,
                   help="solved examples (the subject's first other questions)")
    p.add_argument("--subjects", nargs="+", default=None, help="subjects (snake_case); default: all 57")
    p.add_argument("--form", default="letter", choices=["letter", "cloze"],
                   help="letter: log-likelihood of ' A'..' D'; cloze: each choice's text, per-character normalised")
    p.add_argument("--limit", type=positive_int, default=None, help="first N questions of each subject")
    p.add_argument("--check-lm-eval", nargs=0, action=RemovedFlag, help=argparse.SUPPRESS)
    p.add_argument("--reuse", action="store_true",
                   help="take the scores of an earlier run in --out with the same settings instead of scoring "
                        "again (its table printed again)")
    p.add_argument("--resume", action="store_true",
                   help="keep the subjects an interrupted run in --out finished and score only the rest (a run "
                        "that finished is taken as it is, as with --reuse)")
    p.set_defaults(func=run_mmlu)

    p = ev_sub.add_parser("harness", help="any lm-evaluation-harness task or group (arc_easy, hellaswag, ...)")
    common(p, batch_size=8)
    p.add_argument("--tasks", required=True,
                   help="comma-separated lm-eval task or group names, globs allowed (`lm-eval ls tasks` lists them)")
    p.add_argument("--num-fewshot", type=nonnegative_int, default=None,
                   help="solved examples per prompt (default: each task's own)")
    p.add_argument("--limit", type=harness_limit, default=None,
                   help="the first N documents of each task, or a fraction below 1 (for a quick look, not a score)")
    p.add_argument("--include-path", default=None, metavar="DIR",
                   help="a folder of task YAML files (your own tasks, or tasks over local data files)")
    p.add_argument("--log-samples", action="store_true",
                   help="also write each document's prompt, responses and scores (samples_<task>.jsonl)")
    p.add_argument("--apply-chat-template", action="store_true", help="prompts through the tokenizer's chat template")
    p.add_argument("--gen-kwargs", default=None,
                   help="generation settings of generate_until tasks, e.g. max_gen_toks=64,temperature=0")
    p.set_defaults(func=run_harness)

    p = ev_sub.add_parser("recall", help="the memory diagnostic: associative recall across distractor segments")
    common(p, batch_size=50)
    p.add_argument("--segments", default="1,8,32",
                   help="numbers of distractor segments between the key-value pairs and the queries, e.g. 1,8,32")
    p.add_argument("--n", type=positive_int, default=200, help="test samples per number of segments")
    p.add_argument("--seed", type=nonnegative_int, default=None,
                   help="seed of the test samples (default: the test seed)")
    p.set_defaults(func=run_recall)

    p = ev_sub.add_parser("perplexity", help="token-level perplexity and loss by position (with a plot)")
    common(p, batch_size=1)
    p.add_argument("--data", default="books",
                   help="books (the held-out books), a .txt/.jsonl/.parquet file or folder, or an HF dataset")
    p.add_argument("--seq-len", type=positive_int, default=4096, help="tokens per window (streamed for LM2/RMT)")
    p.add_argument("--max-tokens", type=nonnegative_int, default=65536, help="stop after this many tokens (0: all)")
    p.add_argument("--segment-length", type=positive_int, default=512)
    p.add_argument("--bin-size", type=positive_int, default=None, help="positions per point of the curve (seq_len/64)")
    p.set_defaults(func=run_perplexity)


class RemovedFlag(argparse.Action):
    """--check-lm-eval, gone since `lm2 eval mmlu` scores through lm-evaluation-harness itself: a clear error."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is gone: lm2 eval mmlu now scores through lm-evaluation-harness itself, so "
                     "there is nothing to check against; drop the flag")


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


def _load(args):
    from lm2.eval.common import load_model
    from lm2.outdir import check_writable_dir

    if args.out is not None:  # before the model loads: a bad --out is known at once
        check_writable_dir(args.out, "--out")
    loaded = load_model(args.model, device=args.device, tokenizer=args.tokenizer)
    print(f"{loaded.name}: {loaded.kind} model ({type(loaded.model).__name__}, "
          f"{sum(p.numel() for p in loaded.model.parameters()) / 1e6:.1f}M parameters) on {args.device}")
    return loaded


def run_babilong(args) -> int:
    from lm2.eval.babilong import evaluate_babilong, parse_lengths, parse_tasks, results_table
    from lm2.eval.common import default_out_dir

    tasks, lengths = parse_tasks(args.tasks), parse_lengths(args.lengths, known=args.data is None)
    release = None
    if args.data is not None:  # a missing path, a wrong layout or a missing task is known before the model loads
        from lm2.data.babilong_release import open_release

        release = open_release(args.data)
        release.check(tasks, lengths, args.n)
    loaded = _load(args)
    out = args.out or default_out_dir(loaded, "babilong")
    with hold(out, "lm2 eval babilong"):
        summary = evaluate_babilong(loaded, tasks, lengths, n=args.n, fmt=args.format, shots=args.shots,
                                    segment_length=args.segment_length, batch_size=args.batch_size,
                                    max_new_tokens=args.max_new_tokens, out_dir=out, seed=args.seed,
                                    progress=not args.no_progress, resume=args.resume,
                                    overwrite=args.overwrite, data=release)
    counts = sorted({c for per_task in summary["samples"].values() for c in per_task.values()})
    each = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    source = f"the official release in {args.data}" if release is not None else "generated samples"
    print(f"\nBABILong accuracy (%), {summary['format']} format, {summary['rule']} rule, {each} samples each "
          f"({source})")
    print(results_table(summary))
    print(f"\nwritten to {out}/ (summary.json, <task>_<length>.csv, babilong.png)")
    return 0


def run_recall(args) -> int:
    from lm2.eval.common import default_out_dir
    from lm2.eval.recall import evaluate_recall, parse_segments, recall_spec_of

    segments = parse_segments(args.segments)  # errors before loading the model
    loaded = _load(args)
    spec = recall_spec_of(loaded.path)  # a model not trained on the diagnostic is refused before anything is written
    out = args.out or default_out_dir(loaded, "recall")
    with hold(out, "lm2 eval recall"):
        summary = evaluate_recall(loaded, segments, n=args.n, seed=args.seed, batch_size=args.batch_size,
                                  out_dir=out, progress=not args.no_progress, spec=spec)
    print(f"written to {out}/recall.json and recall.png ({summary['pairs']} pairs, {summary['queries']} queries, "
          f"chance {summary['chance']:.1f}%, seed {summary['seed']})")
    for d, e in summary["errors"].items():
        print(f"  {d} segments: {summary['accuracy'][d]:.1f}% right, {e['other_pair']:.1f}% another pair's value "
              f"(stored, not bound to its key), {e['unstated']:.1f}% unstated; by query "
              + " / ".join(f"{a:.0f}" for a in e["by_query"]))
    print(f"recall accuracy (%), {args.n} samples each: " + ", ".join(
        f"{d} segments {acc:.1f}" for d, acc in summary["accuracy"].items()))
    return 0


def run_mmlu(args) -> int:
    from lm2.eval.common import default_out_dir
    from lm2.eval.lm_eval_adapter import require_lm_eval
    from lm2.eval.mmlu import evaluate_mmlu, table2

    if not args.reuse:
        require_lm_eval()  # before the model loads
    loaded = _load(args)
    out = args.out or default_out_dir(loaded, "mmlu")
    with hold(out, "lm2 eval mmlu"):
        summary = evaluate_mmlu(loaded, shots=args.shots, subjects=args.subjects, form=args.form, limit=args.limit,
                                batch_size=args.batch_size, out_dir=out, progress=not args.no_progress,
                                reuse=args.reuse, resume=args.resume)
    print()
    print(table2(summary, f"MMLU accuracy (%), {args.form} form, {args.shots}-shot, {loaded.name}"))
    print(f"{summary['seconds_per_question']:.3f} s per question; written to {out}/")
    return 0


def run_harness(args) -> int:
    from pathlib import Path

    from lm2.eval.common import default_out_dir, quiet_lm_eval
    from lm2.eval.lm_eval_adapter import evaluate_harness, match_tasks, task_list, task_manager

    requested = task_list(args.tasks)
    manager = task_manager(args.include_path)  # unknown tasks are known before the model loads
    names = match_tasks(manager, requested)
    loaded = _load(args)
    out = args.out or default_out_dir(loaded, "harness")
    with hold(out, "lm2 eval harness"), quiet_lm_eval(None if not args.no_progress else Path(out) / "lm_eval.log"):
        results = evaluate_harness(loaded, names, num_fewshot=args.num_fewshot, limit=args.limit,
                                   batch_size=args.batch_size, include_path=args.include_path,
                                   log_samples=args.log_samples, apply_chat_template=args.apply_chat_template,
                                   gen_kwargs=args.gen_kwargs, out_dir=out, manager=manager)
    from lm_eval.utils import make_table

    print(make_table(results))
    if results.get("groups"):
        print(make_table(results, "groups"))
    print(f"written to {out}/results.json" + (" and samples_<task>.jsonl" if args.log_samples else ""))
    return 0


def run_perplexity(args) -> int:
    from lm2.eval.common import default_out_dir
    from lm2.eval.perplexity import evaluate_perplexity, format_result

    loaded = _load(args)
    out = args.out or default_out_dir(loaded, "perplexity")
    with hold(out, "lm2 eval perplexity"):
        result = evaluate_perplexity(loaded, args.data, seq_len=args.seq_len, max_tokens=args.max_tokens or None,
                                     segment_length=args.segment_length, bin_size=args.bin_size,
                                     batch_size=args.batch_size, out_dir=out, progress=not args.no_progress)
    print(format_result(result))
    print(f"written to {out}/ (perplexity.json, loss_by_position.png)")
    return 0
