"""Splits, story streams and the public generators of bAbI stories and samples.

The train/test split is a partition of stories by a hash of their first two statements: the two splits come
from one stream of story attempts, and any two stories (or BABILong samples, which are story prefixes with
at least two facts) that could coincide always land in the same split.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

from lm2.data.babi.common import SPLITS, TEST_FRACTION, BabiSample, Story, check_task
from lm2.data.babi.tasks import STORY_MAKERS
from lm2.data.babi.world import WrongSplit

# Longest stories seen in en-10k; longer draws are redrawn so that sizes stay within the measured range.
_MAX_LINES = {"qa2": 73, "qa3": 233, "qa5": 131, "qa6": 31, "qa7": 57, "qa8": 55}
_MIN_LINES = {"qa3": 17}


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
    return split


def _check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of {what} must be a non-negative integer, got {n!r}")
    return n


def _digest(text: str) -> int:
    # blake2b rather than hash(): Python salts str hashes per process, and splits must never move.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def story_split(task: str, first_two_statements: list[str]) -> str:
    """The split a story belongs to, decided by its first two statements.

    Keying on the first two statements (not the whole text) means that stories which share any BABILong
    sample (every sample has at least two facts, and its facts are a prefix of the story's statements) also
    share their split, so neither stories nor samples can leak from train into test.
    """
    key = f"{check_task(task)}\n" + "\n".join(first_two_statements)
    return "test" if _digest(key) % 1000 < TEST_FRACTION * 1000 else "train"


def _stream(task: str, split: str, seed: int) -> Iterator[Story]:
    """Stories of one split, in a fixed order for (task, seed).

    Attempt k draws from its own RNG seeded by (task, seed, k), so train and test walk the same attempts
    and each keeps the ones that hash to it; too long (or short) stories are redrawn from the same RNG.
    """
    make, keep = STORY_MAKERS[task], (lambda first_two: story_split(task, first_two) == split)
    k = 0
    while True:
        rng = random.Random(_digest(f"babi:{task}:{seed}:{k}"))
        k += 1
        while True:
            try:
                lines = make(rng, keep)
            except WrongSplit:
                break
            if _MIN_LINES.get(task, 0) <= len(lines) <= _MAX_LINES.get(task, len(lines)):
                yield Story(task, lines)
                break


def generate_stories(task: str, n: int, split: str = "train", seed: int = 0) -> list[Story]:
    """`n` bAbI stories of `task`, reproducible from (task, split, seed); train and test never share one."""
    task, split, n = check_task(task), _check_split(split), _check_count(n, "stories")
    stream = _stream(task, split, seed)
    return [next(stream) for _ in range(n)]


def story_samples(story: Story) -> list[BabiSample]:
    """One BABILong sample per question: the question with every statement of the story before it."""
    samples, facts, fact_index = [], [], {}
    for line in story.lines:
        if line.answer is None:
            fact_index[line.id] = len(facts)
            facts.append(line.text)
            continue
        missing = [i for i in line.supporting if i not in fact_index]
        if missing:
            raise ValueError(f"{story.task} line {line.id}: supporting ids {missing} are not earlier statements")
        samples.append(BabiSample(story.task, list(facts), line.text, line.answer,
                                  [fact_index[i] for i in line.supporting]))
    return samples


def generate_samples(task: str, n: int, split: str = "train", seed: int = 0) -> list[BabiSample]:
    """`n` questions of `task` with their facts: the questions of `generate_stories`'s stories, in order."""
    task, split, n = check_task(task), _check_split(split), _check_count(n, "samples")
    samples: list[BabiSample] = []
    stream = _stream(task, split, seed)
    while len(samples) < n:
        samples.extend(story_samples(next(stream)))
    return samples[:n]
