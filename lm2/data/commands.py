"""`lm2 data ...`: bAbI, BABILong, tokenizer training.

``data babi`` and ``data babilong`` write to stdout unless ``--out FILE`` is given."""

from __future__ import annotations

import sys
from typing import Literal

from lm2.cli import NonNegativeInt, PositiveInt


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


def run_babi(*, task: str, split: Literal["train", "test"] = "test", n: NonNegativeInt = 1000,
             format: Literal["babi", "jsonl"] = "babi", seed: NonNegativeInt = 0, out: str | None = None) -> int:
    """generate bAbI questions (qa1-qa10)

    Args:
        task: qa1 ... qa10
        split: train or test
        n: number of questions
        format: babi: the bAbI text format (whole stories, the last one cut after the n-th question); jsonl: one
            question with its facts per line
        seed: seed of the generator
        out: output file (default: stdout)
    """
    import json
    from dataclasses import asdict

    from lm2.data import babi

    task = babi.check_task(task)
    if format == "jsonl":
        text = "".join(json.dumps(asdict(s)) + "\n" for s in babi.generate_samples(task, n, split, seed))
    else:
        count = max(1, n // 5)  # bAbI stories hold at least one question; grow until there are n
        while True:
            stories = babi.generate_stories(task, count, split, seed)
            if sum(line.answer is not None for s in stories for line in s.lines) >= n:
                break
            count *= 2
        text = babi.format_babi(_cut_stories(stories, n))
    _write_lines([text], out)
    return 0


def _write_lines(lines, out: str | None) -> None:
    """Write to ``out``, or to stdout without it (``data babi`` and ``data babilong`` alike)."""
    if out is None:
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines)


def run_babilong(*, task: str, length: str, split: Literal["train", "test"] = "test", n: PositiveInt = 100,
                 seed: NonNegativeInt = 0, out: str | None = None) -> int:
    """build BABILong samples (bAbI facts hidden in book text)

    Args:
        task: qa1 ... qa10
        length: 0k, 1k, 2k, 4k, ..., 128k (1k = 1000 GPT-2 tokens)
        split: train or test
        n: number of samples
        seed: seed of the samples
        out: output .jsonl file (default: stdout)
    """
    import json
    from dataclasses import asdict

    from tqdm import tqdm

    from lm2.data.babi import check_task
    from lm2.data.babilong import iter_samples, length_name

    check_task(task)  # the samples are made lazily: a bad task or length must fail before the file is made
    length = length_name(length)
    samples = iter_samples(task, length, n, split=split, seed=seed)

    def lines():  # the bar (on stderr) starts with the first line, once the output is open
        for sample in tqdm(samples, total=n, desc=f"{task} {length} {split}", unit="sample"):
            yield json.dumps(asdict(sample), ensure_ascii=False) + "\n"

    _write_lines(lines(), out)
    if out is not None:
        print(f"wrote {n} samples to {out}", file=sys.stderr)
    return 0


def run_tokenizer(*, corpus: str, vocab_size: PositiveInt, out: str) -> int:
    """train a byte-level BPE tokenizer and save it in HF format

    Args:
        corpus: a .txt/.jsonl/.parquet file, a folder, a glob, or 'books' (the TRAIN background books)
        vocab_size: tokens in the vocabulary
        out: output folder
    """
    from lm2.data.tokenizers import train_bpe_tokenizer

    tokenizer = train_bpe_tokenizer(corpus, vocab_size, out_dir=out)
    short = "" if len(tokenizer) == vocab_size else f" (of {vocab_size} asked: the corpus has no more merges)"
    print(f"trained a byte-level BPE with {len(tokenizer)} tokens{short}; saved to {out}")
    return 0
