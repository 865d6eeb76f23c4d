"""The full MMLU on a CPU as resumable pieces: worker processes of one thread each take subject pieces from a
queue (professional_law, the longest, first and alone), then scripts/merge_mmlu.py merges the pieces.

    python scripts/mmlu_in_pieces.py --model runs/smollm2-memory-text-frozen/ckpt-000012 \
        --out runs/mmlu-smollm2-memory-frozen-full [--workers 2] [--form letter --shots 0 --batch-size 8]

The pieces are OUT/law (professional_law), OUT/a0..a3 (the other subjects of scripts/mmlu-subjects-a.txt by
line number mod 4) and OUT/b0..b7 (scripts/mmlu-subjects-b.txt by line number mod 8); every piece runs with
`--resume`, so rerunning the same command after a stop keeps each piece's finished subjects, and skips the
pieces that finished. Each piece's output goes to OUT/<piece>.log; the merged result to OUT/merged. --dry-run
prints the commands instead.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lm2.eval.mmlu import result_files

SCRIPTS = Path(__file__).resolve().parent
LONGEST = "professional_law"


def subject_list(name: str) -> list[str]:
    return [line.strip() for line in (SCRIPTS / name).read_text().splitlines() if line.strip()]


def pieces() -> list[tuple[str, list[str]]]:
    """(name, subjects) for every piece, longest first; together they cover each MMLU subject once."""
    a, b = subject_list("mmlu-subjects-a.txt"), subject_list("mmlu-subjects-b.txt")
    out = [("law", [LONGEST])]
    out += [(f"a{k}", [s for i, s in enumerate(a, 1) if i % 4 == k and s != LONGEST]) for k in range(4)]
    out += [(f"b{k}", [s for i, s in enumerate(b, 1) if i % 8 == k and s != LONGEST]) for k in range(8)]
    return [(name, subjects) for name, subjects in out if subjects]


def piece_command(args: argparse.Namespace, name: str, subjects: list[str]) -> list[str]:
    return ["lm2", "eval", "mmlu", "--model", args.model, "--form", args.form, "--shots", str(args.shots),
            "--batch-size", str(args.batch_size), "--no-progress", "--resume", "--out", str(args.out / name),
            "--subjects", *subjects]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2, help="processes side by side, one thread each")
    parser.add_argument("--form", default="letter")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.workers < 1:
        raise SystemExit(f"--workers {args.workers}: must be at least 1")
    work = pieces()
    if args.dry_run:
        for name, subjects in work:
            print(" ".join(piece_command(args, name, subjects)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(piece: tuple[str, list[str]]) -> int:
        name, subjects = piece
        summary, records = result_files(args.out / name, args.form, args.shots)
        if summary.is_file() and records.is_file():  # finished earlier: not even the model is loaded again
            print(f"{name}: already done ({summary})", flush=True)
            return 0
        start = time.perf_counter()
        print(f"{time.strftime('%H:%M:%S')} start {name} ({len(subjects)} subjects)", flush=True)
        with open(args.out / f"{name}.log", "a") as log:
            rc = subprocess.call(piece_command(args, name, subjects), stdout=log, stderr=subprocess.STDOUT, env=env)
        status = "done" if rc == 0 else f"FAILED (exit {rc}; see {args.out / name}.log)"
        print(f"{time.strftime('%H:%M:%S')} {name} {status} in {time.perf_counter() - start:.0f} s", flush=True)
        return rc

    with ThreadPoolExecutor(args.workers) as pool:
        codes = list(pool.map(run, work))
    failed = [name for (name, _), rc in zip(work, codes) if rc]
    if failed:
        raise SystemExit(f"pieces {', '.join(failed)} failed; rerun the same command to continue them")
    merge = [sys.executable, str(SCRIPTS / "merge_mmlu.py"), "--out", str(args.out / "merged"),
             "--form", args.form, "--shots", str(args.shots), *(str(args.out / name) for name, _ in work)]
    raise SystemExit(subprocess.call(merge))


if __name__ == "__main__":
    main()
