"""Multi-segment associative recall: the diagnostic that isolates the memory.

A sample is a sequence of segments, each as long as the self-attention window:

    segment 0        k12 v3 k40 v17 ... (the key-value pairs, or k12 f5 v3 ... with ``gap``) then filler words
    segments 1..D    filler words only (the distractors)
    last segment     filler words, then "? k40 v17 ? k12 v3 ..." (queries for some of the keys; with
                     ``query_gap`` "? k40 = = v17 ...", and as many last segments as the queries need)

and the model is trained and scored on the value after each queried key. Once the distractors fill at least one
window, the pairs are out of the attention's reach: only a state carried across segments (LM2's memory, RMT's
memory tokens) can answer, and a model without one is at chance (1 / number of values). This is multi-query
associative recall (MQAR; Arora et al. 2023, arXiv 2312.04927) with the pairs and the queries in different
segments. Keys, values and filler words are separate vocabularies, so a key never looks like anything else.

Samples are a pure function of (seed, index): nothing is stored, and the test seed is disjoint from training
(see ``TEST_SEED``). The word-level tokenizer is built in code (one token per word), so the task needs no data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD, EOS, QUERY, ANSWER = "<pad>", "<eos>", "?", "="
# Training draws its seeds from random.Random(f"recall/{train seed}/{step}/{index}"): an integer seed this large
# is never produced there, and evaluation uses it alone.
TEST_SEED = 2**40 + 17
# The RecallSpec fields a training curriculum stage may set for itself (adjacent pairs first, then gaps).
STAGE_FIELDS = ("gap", "query_gap")


@dataclass(frozen=True)
class RecallSpec:
    """What a recall sample looks like. ``segment_length`` is the attention window: one segment of distractors is
    enough to put the pairs out of its reach."""

    num_keys: int = 64
    """Size of the key vocabulary (k0 .. k{num_keys-1})."""
    num_values: int = 32
    """Size of the value vocabulary: chance is 1 / num_values."""
    num_fillers: int = 64
    """Size of the filler vocabulary (f0 ..), from which distractor segments are drawn."""
    pairs: int = 4
    """Key-value pairs written in the first segment (distinct keys; values may repeat)."""
    queries: int = 4
    """Keys asked for in the last segment (distinct, at most ``pairs``)."""
    segment_length: int = 16
    gap: int = 0
    """Filler words between a key and its value in the first segment: 0 to ``gap``, drawn per pair (0 = adjacent).
    A gap tests whether a value is stored where its key will be looked up when the two are not neighbours, as a
    person and a room are not in "Mary went to the kitchen"."""
    query_gap: int = 0
    """Marker words ("=") between a queried key and its value: the value is answered ``query_gap`` + 1 tokens after
    the key instead of right after it, as a room is answered five tokens after the person in "Where is Mary?
    Answer:". It tests the read side: whether what the key reads from the memory reaches the answer's position."""

    def __post_init__(self):
        for name in ("num_keys", "num_values", "num_fillers", "pairs", "queries", "segment_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"recall: {name}={value!r} is invalid: it must be a positive integer.")
        for name in ("gap", "query_gap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"recall: {name}={value!r} is invalid: it must be an integer >= 0.")
        if self.pairs > self.num_keys:
            raise ValueError(f"recall: pairs={self.pairs} is invalid: it needs at most num_keys={self.num_keys}.")
        if self.queries > self.pairs:
            raise ValueError(f"recall: queries={self.queries} is invalid: at most pairs={self.pairs} keys can be "
                             "asked.")
        if (2 + self.gap) * self.pairs > self.segment_length:
            raise ValueError(
                f"recall: segment_length={self.segment_length} is too short for {self.pairs} pairs "
                f"({2 + self.gap} tokens each at most, gap={self.gap}): the pairs must fit in the first segment.")

    def vocabulary(self) -> list[str]:
        # the answer marker comes last, and only when used: specs without it keep their token ids and size
        return ([PAD, EOS, QUERY] + [f"k{i}" for i in range(self.num_keys)]
                + [f"v{i}" for i in range(self.num_values)] + [f"f{i}" for i in range(self.num_fillers)]
                + ([ANSWER] if self.query_gap else []))


@dataclass(frozen=True)
class RecallSample:
    words: tuple[str, ...]  # the whole sequence, one word per token
    answers: tuple[int, ...]  # positions (indices into ``words``) of the values the model must produce
    pairs: tuple[tuple[str, str], ...]  # what the first segment stated
    distractor_segments: int


def make_sample(spec: RecallSpec, distractor_segments: int, rng: random.Random) -> RecallSample:
    """One sample with ``distractor_segments`` segments of filler between the pairs and the queries."""
    if distractor_segments < 0:
        raise ValueError(f"recall: distractor_segments={distractor_segments} is invalid: it must be >= 0.")
    s = spec.segment_length
    fill = lambda n: [f"f{rng.randrange(spec.num_fillers)}" for _ in range(n)]  # noqa: E731
    keys = rng.sample(range(spec.num_keys), spec.pairs)
    pairs = tuple((f"k{k}", f"v{rng.randrange(spec.num_values)}") for k in keys)
    gaps = [rng.randint(0, spec.gap) for _ in pairs] if spec.gap else [0] * len(pairs)
    first = [w for (key, value), g in zip(pairs, gaps) for w in [key, *fill(g), value]]
    words = first + fill(s - len(first)) + fill(s * distractor_segments)
    asked = rng.sample(pairs, spec.queries)
    width = 3 + spec.query_gap  # "? key = ... = value"
    last = fill(-width * spec.queries % s)  # the queries end the last of as many segments as they need
    answers = []
    for key, value in asked:
        last += [QUERY, key, *[ANSWER] * spec.query_gap, value]
        answers.append(len(words) + len(last) - 1)
    return RecallSample(tuple(words + last), tuple(answers), pairs, distractor_segments)


def stage_spec(spec: RecallSpec, stage: dict) -> RecallSpec:
    """``spec`` with the fields a training curriculum stage sets for itself (``STAGE_FIELDS``); ValueError if the
    result is not a valid spec."""
    return replace(spec, **{name: stage[name] for name in STAGE_FIELDS if name in stage})


def make_samples(spec: RecallSpec, distractor_segments: int, n: int, seed: int = TEST_SEED) -> list[RecallSample]:
    rng = random.Random(f"recall-test/{seed}/{distractor_segments}")
    return [make_sample(spec, distractor_segments, rng) for _ in range(n)]


def encode(sample: RecallSample, tokenizer) -> tuple[list[int], list[int]]:
    """(input_ids, labels): labels are -100 except at the values after each queried key (the loss and the score
    only ever look at those)."""
    vocab = tokenizer.get_vocab()
    ids = [vocab[w] for w in sample.words]
    labels = [-100] * len(ids)
    for pos in sample.answers:
        labels[pos] = ids[pos]
    return ids, labels


def build_tokenizer(spec: RecallSpec, out_dir: str | Path | None = None):
    """A word-level fast tokenizer over the spec's vocabulary (whitespace-separated words, no unknowns)."""
    vocab = {w: i for i, w in enumerate(spec.vocabulary())}
    core = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS)
    if out_dir is not None:
        tok.save_pretrained(str(out_dir))
    return tok

