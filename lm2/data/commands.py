"""`lm2 data ...` (bAbI, BABILong, tokenizer training) and `lm2 score babilong`.

``data babi`` and ``data babilong`` write to stdout unless ``--out FILE`` is given."""

from __future__ import annotations

import argparse
import sys

from lm2.cli import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="generate bAbI / BABILong data, train a tokenizer")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data_sub.required = True

    p = data_sub.add_parser("babi", help="generate bAbI questions (qa1-qa10)")
    p.add_argument("--task", required=True, help="qa1 ... qa10")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--n", type=nonnegative_int, default=1000, help="number of questions")
    p.add_argument("--format", default="babi", choices=["babi", "jsonl"],
                   help="babi: the bAbI text format (whole stories, the last one cut after the n-th question); "
                        "jsonl: one question with its facts per line")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", help="output file (default: stdout)")
    p.set_defaults(func=run_babi)

    p = data_sub.add_parser("babilong", help="build BABILong samples (bAbI facts hidden in book text)")
    p.add_argument("--task", required=True, help="qa1 ... qa10")
    p.add_argument("--length", required=True, help="0k, 1k, 2k, 4k, ..., 128k (1k = 1000 GPT-2 tokens)")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--n", type=positive_int, default=100, help="number of samples")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", help="output .jsonl file (default: stdout)")
    p.set_defaults(func=run_babilong)

    p = data_sub.add_parser("tokenizer", help="train a byte-level BPE tokenizer and save it in HF format")
    p.add_argument("--corpus", required=True,
                   help="a .txt/.jsonl/.parquet file, a folder, a glob, or 'books' (the TRAIN background books)")
    p.add_argument("--vocab-size", type=positive_int, required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run_tokenizer)

    score = sub.add_parser("score", help="score model outputs")
    score_sub = score.add_subparsers(dest="score_command", metavar="SUBCOMMAND")
    score_sub.required = True
    p = score_sub.add_parser("babilong", help="accuracy of a CSV with columns target, output, question")
    p.add_argument("csv", help="CSV file of model outputs")
    p.add_argument("--task", required=True, help="qa1 ... qa10")
    p.add_argument("--rule", default="label", choices=["label", "exact"],
                   help="label: BABILong's published rule for generated text; exact: exact match")
    p.set_defaults(func=run_score_babilong)


def _cut_stories(stories, n: int):
    """The stories up to the n-th question, the last one cut right after it."""
    from lm2.data.babi import Story

    out, left = [], n
    for story in stories:
        if left == 0:
            break
        lines = []
        for line in story.lines:
            lines.append(line)
            if line.answer is not None:
                left -= 1
                if left == 0:
                    break
        out.append(Story(story.task, lines))
    return out


def run_babi(args) -> int:
    import json
    from dataclasses import asdict

    from lm2.data import babi

    task = babi.check_task(args.task)
    if args.n < 0:
        raise ValueError(f"--n must be non-negative, got {args.n}")
    if args.format == "jsonl":
        text = "".join(json.dumps(asdict(s)) + "\n" for s in babi.generate_samples(task, args.n, args.split, args.seed))
    else:
        count = max(1, args.n // 5)  # bAbI stories hold at least one question; grow until there are n
        while True:
            stories = babi.generate_stories(task, count, args.split, args.seed)
            if sum(line.answer is not None for s in stories for line in s.lines) >= args.n:
                break
            count *= 2
        text = babi.format_babi(_cut_stories(stories, args.n))
    _write_lines([text], args.out)
    return 0


def _write_lines(lines, out: str | None) -> None:
    """Write to ``out``, or to stdout without it (``data babi`` and ``data babilong`` alike)."""
    if out is None:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines)


def run_babilong(args) -> int:
    import json
    from dataclasses import asdict

    from tqdm import tqdm

    from lm2.data.babi import check_task
    from lm2.data.babilong import iter_samples, length_name

    check_task(args.task)  # the samples are made lazily: a bad task or length must fail before the file is made
    length = length_name(args.length)
    samples = iter_samples(args.task, length, args.n, split=args.split, seed=args.seed)

    def lines():  # the bar (on stderr) starts with the first line, once the output is open
        for sample in tqdm(samples, total=args.n, desc=f"{args.task} {length} {args.split}", unit="sample"):
            yield json.dumps(asdict(sample), ensure_ascii=False) + "\n"

    _write_lines(lines(), args.out)
    if args.out is not None:
        print(f"wrote {args.n} samples to {args.out}", file=sys.stderr)
    return 0


def run_tokenizer(args) -> int:
    from lm2.data.tokenizers import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(args.corpus, args.vocab_size, out_dir=args.out)
    short = "" if len(tokenizer) == args.vocab_size else f" (of {args.vocab_size} asked: the corpus has no more merges)"
    print(f"trained a byte-level BPE with {len(tokenizer)} tokens{short}; saved to {args.out}")
    return 0


def run_score_babilong(args) -> int:
    from lm2.data.babilong_scoring import score_csv

    accuracy = score_csv(args.csv, args.task, rule=args.rule)
    print(f"{args.task}: {accuracy:.2f}% ({args.rule} rule)")
    return 0
