"""BABILong's background text: the sentences of a split's books, with their token counts (the haystack).

How the background is filled, fast enough for 128k tokens: each split's books are split once into
sentences (nltk's Punkt, which needs no download, with a list of common abbreviations), sentences under 10
tokens are dropped, and every sentence's token count is stored with a cumulative sum (in memory, and on
disk in lm2's cache for the default GPT-2 counter). A sample then starts at a random sentence of the split
(equivalently: a random book, chosen in proportion to its length, and a random offset in it), continues
through the following books if it must, and ends at the last sentence that still fits: one binary search.
Train and test samples come from disjoint books (``lm2.data.corpora``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lm2.data.corpora import BOOKS, BOOKS_WHEEL, background_books
from lm2.data.tokenizers import TokenCounter, count_tokens, token_counter
from lm2.wheels import cache_dir

MIN_SENTENCE_TOKENS = 10  # shorter background sentences (headings, "Yes, sir.") are dropped

# Punkt without training splits after every "Mr."; these abbreviations (lower case, no period) never end a
# sentence in the books we use.
_ABBREVIATIONS = frozenset("mr mrs dr st messrs mme mlle esq capt col gen lieut rev prof sr jr vol ch vs etc viz "
                           "hon sec".split())
_CACHE_VERSION = "babilong-haystack-v1"


@dataclass
class _Haystack:
    """A split's background sentences in book order, with token counts and their (doubled) cumulative sum."""

    sentences: list[str]
    tokens: np.ndarray  # (S,) tokens of " " + sentence
    cumsum: np.ndarray  # (2S + 1,) cumulative tokens over the sentences read twice, to wrap past the end

    @property
    def total(self) -> int:
        return int(self.cumsum[len(self.sentences)])


def _sentence_splitter():
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer  # heavy: nltk takes 0.8 s to import

    params = PunktParameters()
    params.abbrev_types = set(_ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


def _book_sentences(split: str) -> list[str]:
    splitter = _sentence_splitter()
    sentences = []
    for book in background_books(split):
        for paragraph in book.text.split("\n\n"):  # a sentence never spans paragraphs
            sentences.extend(s.strip() for s in splitter.tokenize(paragraph) if s.strip())
    return sentences


def _disk_cache_path(split: str) -> Path:
    key = json.dumps([_CACHE_VERSION, BOOKS_WHEEL, sorted(_ABBREVIATIONS), MIN_SENTENCE_TOKENS,
                      [(b.key, b.split, b.files) for b in BOOKS], split])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "babilong" / f"{split}-gpt2-{digest}.json"


def _build_haystack(split: str, counter: TokenCounter) -> _Haystack:
    sentences = _book_sentences(split)
    counts = counter([" " + s for s in sentences])  # " " + s: exactly how a sentence counts inside the context
    kept = [(s, c) for s, c in zip(sentences, counts) if c >= MIN_SENTENCE_TOKENS]
    return _haystack_from(split, [s for s, _ in kept], [c for _, c in kept])


def _haystack_from(split: str, sentences: list[str], counts: list[int]) -> _Haystack:
    if not sentences:
        raise ValueError(f"the {split} books hold no background sentences")
    tokens = np.asarray(counts, dtype=np.int64)
    cumsum = np.concatenate([[0], np.cumsum(np.concatenate([tokens, tokens]))])
    return _Haystack(sentences, tokens, cumsum)


@functools.lru_cache(maxsize=4)
def _gpt2_haystack(split: str) -> _Haystack:
    path = _disk_cache_path(split)
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return _haystack_from(split, data["sentences"], data["tokens"])
        except (ValueError, KeyError):
            pass  # a damaged cache file is rebuilt below
    hay = _build_haystack(split, count_tokens)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")
    tmp.write_text(json.dumps({"sentences": hay.sentences, "tokens": hay.tokens.tolist()}), encoding="utf-8")
    os.replace(tmp, path)  # atomic: concurrent builders never see half a file
    return hay


_CUSTOM_HAYSTACKS: dict[tuple[str, int], tuple[Any, _Haystack]] = {}


def background_haystack(split: str, tokenizer: Any = None) -> _Haystack:
    """The split's sentences and token counts (built once per split and tokenizer)."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
    if tokenizer is None:
        return _gpt2_haystack(split)
    key = (split, id(tokenizer))
    if key not in _CUSTOM_HAYSTACKS:  # the tokenizer is kept alive beside its haystack, so ids stay unique
        _CUSTOM_HAYSTACKS[key] = (tokenizer, _build_haystack(split, token_counter(tokenizer)))
    return _CUSTOM_HAYSTACKS[key][1]


def background_sentences(split: str, budget: int, rng: random.Random, tokenizer: Any) -> list[str]:
    """Consecutive background sentences from a random start, as many as fit in ``budget`` tokens."""
    hay = background_haystack(split, tokenizer)
    if budget > hay.total:
        raise ValueError(f"the {split} books hold {hay.total} tokens of background, fewer than the {budget} this "
                         f"length needs; use a shorter length")
    n = len(hay.sentences)
    start = rng.randrange(n)
    # The last end with cumsum[end] - cumsum[start] <= budget: the sentences [start, end) fill the budget.
    end = int(np.searchsorted(hay.cumsum, hay.cumsum[start] + budget, side="right")) - 1
    return [hay.sentences[i % n] for i in range(start, end)]
