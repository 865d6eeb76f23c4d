"""Do two training runs repeat each other? The check behind "the same data, another model" (RESULTS.md 1c).

    python scripts/same_run.py runs/a runs/b                     # two runs' metrics.jsonl, step by step
    python scripts/same_run.py --samples runs/a/config.yaml --steps 0,1,150,300,399

The first form compares the training records of two runs (their out_dir or metrics.jsonl) field by field (loss and
grad_norm unless --fields says otherwise) over the steps both logged, and prints, per field, the first step where they
differ and how many significant digits agree there. Exit status 0 when every compared value is equal, 1 when one
differs: two runs of the same command on one machine should give 0 (lm2 is deterministic there, with one thread
or two); across code versions a difference in the sixth digit is enough for 400 steps to land on another model.

The second form prints a sha1 over the training examples of a config at the given steps (every index of the
global batch, as one process draws them): run it under two code versions (e.g. a `git worktree` of the older commit
on PYTHONPATH) to check that both train on the same data before comparing their losses. Nothing is trained.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path

DEFAULT_FIELDS = ("loss", "grad_norm")


def metrics_path(run: str | Path) -> Path:
    path = Path(run)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no metrics.jsonl there (give a run's out_dir or its metrics.jsonl)")
    return path


def train_records(path: Path) -> dict[int, dict]:
    """The training records of a metrics.jsonl by step (a resumed run's later record of a step wins)."""
    from lm2.viz.curves import read_metrics

    return {r["step"]: r for r in read_metrics(path) if r.get("kind") == "train"}


def agreeing_digits(a: float, b: float) -> float:
    """How many significant digits two numbers share: inf when equal, 0 when they differ in the first."""
    if a == b:
        return math.inf
    scale = max(abs(a), abs(b))
    return max(0.0, math.floor(-math.log10(abs(a - b) / scale))) if scale else math.inf


def compare(a: dict[int, dict], b: dict[int, dict], fields: list[str]) -> dict[str, tuple[int, float] | None]:
    """Per field: (first step where the runs differ, the digits that agree there), or None if they never do."""
    steps = sorted(set(a) & set(b))
    if not steps:
        raise ValueError("the two runs have no training step in common")
    first: dict[str, tuple[int, float] | None] = {}
    for field in fields:
        missing = [s for s in steps if field not in a[s] or field not in b[s]]
        if missing:
            raise ValueError(f"field {field!r} is missing from step {missing[0]} of one run (fields of that step: "
                             f"{sorted(set(a[missing[0]]) | set(b[missing[0]]))})")
        first[field] = next(((s, agreeing_digits(a[s][field], b[s][field])) for s in steps
                             if a[s][field] != b[s][field]), None)
    return first


def samples_hash(config: str | Path, steps: list[int]) -> str:
    """sha1 over the token ids and labels of every training example of ``config`` at ``steps``."""
    from lm2.train.config import load_config
    from lm2.train.data import make_stream, task_tokenizer

    cfg = load_config(config)
    if cfg.data.task not in ("babilong", "recall"):
        raise ValueError(f"{config}: data.task={cfg.data.task!r}; sample hashes are for babilong and recall streams "
                         "(a text stream's samples are the corpus itself)")
    stream = make_stream(cfg, task_tokenizer(cfg), 0, 1, cfg.train.batch_size)
    digest = hashlib.sha1()
    for step in steps:
        for index in range(cfg.train.batch_size):
            ids, labels = stream.example(step, index)
            digest.update(repr((step, index, list(ids), list(labels))).encode())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="two runs (out_dir or metrics.jsonl)")
    parser.add_argument("--fields", default=",".join(DEFAULT_FIELDS), help="training record fields to compare")
    parser.add_argument("--samples", metavar="CONFIG", help="print a hash of this config's training samples instead")
    parser.add_argument("--steps", default="0,1", help="with --samples: the steps whose samples are hashed")
    args = parser.parse_args(argv)
    try:
        if args.samples:
            if args.runs:
                parser.error("--samples takes a config, not runs")
            steps = [int(s) for s in args.steps.split(",")]
            print(f"{samples_hash(args.samples, steps)}  {args.samples} steps {args.steps}")
            return 0
        if len(args.runs) != 2:
            parser.error("give two runs to compare (or --samples CONFIG)")
        a, b = (train_records(metrics_path(run)) for run in args.runs)
        fields = [f for f in args.fields.split(",") if f]
        first = compare(a, b, fields)
    except (FileNotFoundError, ValueError) as err:
        print(f"same_run.py: {err}", file=sys.stderr)
        return 2
    steps = sorted(set(a) & set(b))
    print(f"{len(steps)} steps in common ({steps[0]}-{steps[-1]})")
    for field, where in first.items():
        if where is None:
            print(f"{field}: equal at every step")
        else:
            step, digits = where
            print(f"{field}: first differs at step {step} ({a[step][field]!r} against {b[step][field]!r}, "
                  f"{digits:.0f} significant digits agree)")
    return 0 if all(where is None for where in first.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
