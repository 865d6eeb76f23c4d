"""The official BABILong release (Kuratov et al. 2024), read from a local copy: no network at run time.

The benchmark is published as Hugging Face datasets: ``RMT-team/babilong`` (100 test samples per task and
length), ``RMT-team/babilong-1k-samples`` (1000) and ``RMT-team/babilong-train-5k-samples`` (training). Each has
one configuration per length (0k, 1k, ... 128k and beyond) and one split per task (qa1 ... qa20), and every
sample has the fields ``input`` (the task's facts hidden in PG-19 text), ``question`` and ``target``. A sample
becomes a ``lm2.data.babilong.BabilongSample`` (context = input, no list of facts), so it goes through the prompts,
decoding, CSVs and scoring of lm2's generated samples unchanged. lm2 knows the prompts and answer labels of qa1-qa10.

Layouts (``LAYOUTS``): PATH is the folder the dataset was downloaded or saved to. For a task T and length L, the
samples are read from the first of these that exists, below PATH or below PATH/data:

* ``L/T-*.parquet``  (or ``L/T.parquet``): babilong-1k-samples as the Hub holds it
* ``T/L-*.parquet``  (or ``T/L.parquet``): RMT-team/babilong in its parquet revisions
* ``L/T/*.parquet``: the Hub's parquet conversion (the ``refs/convert/parquet`` branch)
* ``L/T/*.arrow``: ``datasets``' ``save_to_disk`` of each configuration (``load_dataset(name, L).save_to_disk(PATH/L)``)
* ``T/L.json`` or ``T/L.jsonl``: RMT-team/babilong and babilong-train-5k-samples as the Hub holds them
  (``data/qa1/0k.json``): JSON lines, or one JSON array

Length names are compared as token counts (``1M`` is ``1000k``) and task names as bAbI task names (``QA1`` is
``qa1``). A folder where none of these is found is refused, naming what it holds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lm2.data.babilong import BabilongSample, length_name, parse_length
from lm2.data.tokenizers import count_tokens

FIELDS = ("input", "question", "target")
DATASETS = ("RMT-team/babilong", "RMT-team/babilong-1k-samples", "RMT-team/babilong-train-5k-samples")
LAYOUTS = ("<length>/<task>-*.parquet", "<task>/<length>-*.parquet", "<length>/<task>/*.parquet",
           "<length>/<task>/*.arrow (datasets' save_to_disk)", "[data/]<task>/<length>.json[l]")
_TASK = re.compile(r"qa\d+", re.IGNORECASE)
_LENGTH = re.compile(r"\d+[km]?", re.IGNORECASE)
_JSON_SUFFIXES = (".json", ".jsonl")


def expected_layout() -> str:
    """The layouts lm2 reads, in one line (for error messages and help)."""
    return "one of " + ", ".join(LAYOUTS) + " below the folder"


def download_hint(path: str | os.PathLike) -> str:
    return (f"download the official BABILong release there first: the Hugging Face dataset {DATASETS[0]} or "
            f"{DATASETS[1]} (test), {DATASETS[2]} (training), e.g. `hf download {DATASETS[0]} "
            f"--repo-type dataset --local-dir {path}`; lm2 reads {expected_layout()}")


def _task_name(text: str) -> str | None:
    return text.lower() if _TASK.fullmatch(text) else None


def _length_name(text: str) -> str | None:
    return length_name(text) if _LENGTH.fullmatch(text) else None


def _pair(first: str, second: str) -> tuple[str, str] | None:
    """(task, length) from two path parts in either order, or None."""
    for a, b in ((first, second), (second, first)):
        task, length = _task_name(a), _length_name(b)
        if task and length:
            return task, length
    return None


def _shard_stem(name: str) -> str:
    """"qa1-00000-of-00002.parquet" -> "qa1"; "qa1.parquet" -> "qa1"."""
    stem = name.rsplit(".", 1)[0]
    return stem.split("-", 1)[0]


@dataclass(frozen=True)
class Split:
    """One task at one length: its files, in order, and how they are stored."""

    task: str
    length: str
    files: tuple[Path, ...]
    kind: str  # "parquet", "arrow" or "json"


@dataclass(frozen=True)
class BabilongRelease:
    """A local copy of the official BABILong release: which tasks and lengths it holds, and their samples."""

    root: Path
    splits: dict[tuple[str, str], Split]

    @property
    def tasks(self) -> list[str]:
        return sorted({t for t, _ in self.splits}, key=lambda t: int(t[2:]))

    @property
    def lengths(self) -> list[str]:
        return sorted({n for _, n in self.splits}, key=parse_length)

    def split(self, task: str | int, length: str | int) -> Split:
        name = str(task).strip().lower()
        key = (f"qa{name}" if name.isdigit() else name, length_name(length))
        if key not in self.splits:
            raise ValueError(f"{self.root} holds no {key[0]} samples at length {key[1]}: it holds "
                             f"{', '.join(self.tasks)} at {', '.join(self.lengths)}")
        return self.splits[key]

    def check(self, tasks: Sequence[str], lengths: Sequence[str | int], n: int | None = None) -> None:
        """ValueError unless every task is there at every length, its first sample reads, and it holds at least
        ``n`` samples: what a run needs, known before any work starts."""
        for task in tasks:
            for length in lengths:
                split = self.split(task, length)
                for path in split.files:
                    _check_file(path, split.kind)
                if next(_records(split, 1), None) is None:
                    raise ValueError(f"{split.files[0]} holds no samples")
                if n is not None:
                    _check_count(split, _count(split, n), n)

    def samples(self, task: str, length: str | int, n: int | None = None) -> list[BabilongSample]:
        """The first ``n`` samples (all with None) of a task and length, in the release's order. ValueError if
        it holds fewer than ``n``."""
        split = self.split(task, length)
        records = list(_records(split, n))
        if n is not None:
            _check_count(split, len(records), n)
        return [_to_sample(r, split) for r in records]

    def random_sample(self, task: str, length: str | int, rng: random.Random) -> BabilongSample:
        """A sample drawn uniformly by ``rng`` (training: the split is read once and kept in memory)."""
        split = self.split(task, length)
        records = _all_records(split)
        return _to_sample(records[rng.randrange(len(records))], split)


def open_release(path: str | os.PathLike, what: str = "--data") -> BabilongRelease:
    """Find the tasks and lengths of a local copy of the official release (see the module's layouts); a missing
    path, a file, or a folder in no known layout is a ValueError that says what to download and what is expected.
    Only names are read here: files are opened when their samples are asked for."""
    root = Path(path).expanduser()
    if not root.exists():
        raise ValueError(f"{what} {root} does not exist: {download_hint(root)}")
    if not root.is_dir():
        raise ValueError(f"{what} {root} is a file: give the folder of the BABILong release; lm2 reads "
                         f"{expected_layout()}")
    splits: dict[tuple[str, str], Split] = {}
    for base in (root, root / "data"):
        if base.is_dir():
            for split in _scan(base):
                key = (split.task, split.length)
                if key in splits:
                    raise ValueError(f"{root} holds {split.task} at {split.length} twice ({splits[key].files[0]} "
                                     f"and {split.files[0]}): keep one copy")
                splits[key] = split
    if not splits:
        raise ValueError(f"{what} {root} holds no BABILong data lm2 can read ({_found(root)}); expected "
                         f"{expected_layout()}, as in {DATASETS[0]} or {DATASETS[1]}")
    return BabilongRelease(root, splits)


def _scan(base: Path) -> Iterator[Split]:
    for top in sorted(p for p in base.iterdir() if p.is_dir()):
        shards: dict[tuple[tuple[str, str], str], list[Path]] = {}  # a split's parquet shards are separate files
        for child in sorted(top.iterdir()):
            if child.is_dir():
                pair = _pair(top.name, child.name)
                if pair is None:
                    continue
                for kind, pattern in (("parquet", "*.parquet"), ("arrow", "*.arrow")):
                    files = tuple(sorted(child.glob(pattern)))
                    if files:
                        yield Split(*pair, _arrow_order(child, files) if kind == "arrow" else files, kind)
                        break
            elif child.suffix in (".parquet", *_JSON_SUFFIXES):
                kind = "parquet" if child.suffix == ".parquet" else "json"
                pair = _pair(top.name, _shard_stem(child.name) if kind == "parquet" else child.stem)
                if pair is not None:
                    shards.setdefault((pair, kind), []).append(child)
        for (pair, kind), files in shards.items():
            if kind == "json" and len(files) > 1:
                raise ValueError(f"{top} holds {pair[0]} at {pair[1]} twice ({files[0].name} and {files[1].name}): "
                                 f"keep one")
            yield Split(*pair, tuple(files), kind)


def _arrow_order(folder: Path, files: tuple[Path, ...]) -> tuple[Path, ...]:
    """save_to_disk's shards in the order its state.json lists them (sorted by name without one)."""
    try:
        listed = [folder / f["filename"] for f in json.loads((folder / "state.json").read_text())["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return files
    return tuple(listed) if listed and all(p.is_file() for p in listed) else files


def _found(root: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not names:
        return "the folder is empty"
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"found {shown}"


# ----------------------------------------------------------------------------------------------------- reading


def _records(split: Split, limit: int | None = None) -> Iterator[dict]:
    """The split's rows as {input, question, target} dicts, in order, stopping after ``limit``."""
    if limit is not None and limit < 1:
        return
    count = 0
    for path in split.files:
        for record in _file_records(path, split.kind):
            yield record
            count += 1
            if count == limit:
                return


@contextlib.contextmanager
def _reading(path: Path, kind: str):
    """Open ``path`` only if it is not a Git LFS pointer, and turn pyarrow's and the OS's errors into one
    ValueError naming the file."""
    _refuse_lfs_pointer(path)
    try:
        yield
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path} is not a readable {kind} file ({str(err).splitlines()[0]})") from None


def _check_file(path: Path, kind: str) -> None:
    """ValueError unless the file opens and has the three fields (a JSON file: its first sample has them)."""
    with _reading(path, kind):
        if kind == "parquet":
            _check_columns(path, pq.ParquetFile(path).schema_arrow.names)
        elif kind == "arrow":
            _check_columns(path, _arrow_reader(path).schema.names)
        else:
            next(_json_records(path), None)


def _check_count(split: Split, count: int, n: int) -> None:
    if count < n:
        raise ValueError(f"{split.files[0].parent} holds {count} {split.task} samples at {split.length}, fewer than "
                         f"the {n} asked for: ask for {count} or fewer")


def _count(split: Split, limit: int) -> int:
    """How many samples the split holds, counting no further than ``limit`` (row counts, no text decoded)."""
    count = 0
    for path in split.files:
        with _reading(path, split.kind):
            if split.kind == "parquet":
                count += pq.ParquetFile(path).metadata.num_rows
            elif split.kind == "arrow":
                count += sum(batch.num_rows for batch in _arrow_reader(path))
            elif _is_json_array(path):
                count += sum(1 for _ in _json_records(path))
            else:
                with open(path, "rb") as f:
                    count += sum(1 for line in f if line.strip())
        if count >= limit:
            break
    return count


@functools.lru_cache(maxsize=None)
def _all_records(split: Split) -> tuple[dict, ...]:
    records = tuple(_records(split))
    if not records:
        raise ValueError(f"{split.files[0]} holds no samples")
    return records


def _refuse_lfs_pointer(path: Path) -> None:
    if path.stat().st_size < 300 and path.read_bytes().startswith(b"version https://git-lfs"):
        raise ValueError(f"{path} is a Git LFS pointer, not the data: fetch the files (git lfs pull, or hf "
                         f"download)")


def _file_records(path: Path, kind: str) -> Iterator[dict]:
    with _reading(path, kind):
        if kind == "json":
            yield from _json_records(path)
            return
        if kind == "parquet":
            file = pq.ParquetFile(path)
            _check_columns(path, file.schema_arrow.names)
            batches = file.iter_batches(columns=list(FIELDS), batch_size=64)
        else:
            reader = _arrow_reader(path)
            _check_columns(path, reader.schema.names)
            batches = (batch.select(list(FIELDS)) for batch in reader)
        index = 0
        for batch in batches:
            for record in batch.to_pylist():
                yield _checked(record, path, index)
                index += 1


def _arrow_reader(path: Path):
    """save_to_disk writes the Arrow stream format; the file format is read too."""
    source = pa.memory_map(str(path))
    try:
        return pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        return _FileBatches(pa.ipc.open_file(source))


class _FileBatches:
    """An Arrow IPC file read batch by batch, with the ``schema`` a stream reader has."""

    def __init__(self, file):
        self.file, self.schema = file, file.schema

    def __iter__(self):
        return (self.file.get_batch(i) for i in range(self.file.num_record_batches))


def _is_json_array(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4096).lstrip().startswith(b"[")


def _json_records(path: Path) -> Iterator[dict]:
    """JSON lines, or one JSON array (told apart by the first character)."""
    array = _is_json_array(path)
    with open(path, encoding="utf-8") as f:
        try:
            if array:
                try:
                    rows = json.load(f)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path} is not valid JSON (line {err.lineno}: {err.msg})") from None
                for i, record in enumerate(rows):
                    yield _checked(record, path, i)
                return
            index = 0
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg}); expected one sample per "
                                     f"line or one JSON array") from None
                yield _checked(record, path, index)
                index += 1
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text (byte {err.start})") from None


def _check_columns(path: Path, names: Sequence[str]) -> None:
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (it has {', '.join(names)}); a BABILong sample "
                         f"has {', '.join(FIELDS)}")


def _checked(record, path: Path, index: int) -> dict:
    if not isinstance(record, dict):
        raise ValueError(f"{path}: sample {index} is {type(record).__name__}, not an object with "
                         f"{', '.join(FIELDS)}")
    _check_columns(path, list(record))
    for name in FIELDS:
        if not isinstance(record[name], str):
            raise ValueError(f"{path}: sample {index} has {name} = {record[name]!r}, not a string")
    return {name: record[name] for name in FIELDS}


def _to_sample(record: dict, split: Split) -> BabilongSample:
    context = record["input"].strip()
    return BabilongSample(task=split.task, length=split.length, context=context, question=record["question"].strip(),
                          target=record["target"].strip(), facts=[], n_tokens=count_tokens([context])[0])
