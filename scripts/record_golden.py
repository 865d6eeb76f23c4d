"""Record the golden outputs that tests/test_golden.py compares against (tests/golden/<case>.json + .safetensors).

    OMP_NUM_THREADS=1 python scripts/record_golden.py              # every case
    OMP_NUM_THREADS=1 python scripts/record_golden.py train_lm ... # only these cases
    python scripts/record_golden.py --list

The golden files pin today's behaviour of lm2's public entry points (model logits in one call and streamed,
generation, `lm2 train` losses, `lm2 eval ...` results, data generators; tests/golden/cases.py says what each
case runs) so that a refactor can be checked to change nothing. Regenerating them is legitimate only for a
deliberate behaviour change: a change meant to alter what these entry points compute (a new default, a fixed
bug, different data), made in the same commit as the regenerated files, with the commit message naming the
cases that changed and why. Never regenerate to make a refactor's test pass: if the refactor moved or renamed an
entry point, change the call in tests/golden/cases.py and keep the recorded values.

Each case is computed twice, in fresh scratch folders, on one thread and then on ``--check-threads`` threads
(default 2), and refused if the two results differ beyond the test's tolerances: nothing nondeterministic, and
nothing that hangs on the order of float operations (a refactor may reorder them), is recorded. On a machine whose
cores are busy the two-thread pass is slow; ``--check-threads 1`` checks determinism only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import torch  # noqa: E402

from golden import cases  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", help=f"cases to record (default: all): {', '.join(cases.CASES)}")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--check-threads", type=int, default=2,
                        help="torch threads of the second computation of each case (default 2)")
    args = parser.parse_args(argv)
    if args.list:
        for name, fn in cases.CASES.items():
            print(f"{name}: {(fn.__doc__ or '').strip().splitlines()[0]}")
        return 0
    unknown = [c for c in args.cases if c not in cases.CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}: choose from {', '.join(cases.CASES)}")
    names = args.cases or list(cases.CASES)
    with tempfile.TemporaryDirectory() as tmp_a, tempfile.TemporaryDirectory() as tmp_b:
        first, second = cases.Workspace(Path(tmp_a)), cases.Workspace(Path(tmp_b))
        for name in names:
            start = time.perf_counter()
            torch.set_num_threads(1)  # as tests/test_golden.py runs them
            result = cases.CASES[name](first)
            torch.set_num_threads(args.check_threads)
            again = cases.CASES[name](second)
            data, tensors = cases.normalise(result)
            data_b, tensors_b = cases.normalise(again)
            differences = cases.compare(data, data_b, tensors, tensors_b)
            if differences:
                print(f"{name}: the runs on 1 and {args.check_threads} threads differ, not recorded:\n  "
                      + "\n  ".join(differences[:20]), file=sys.stderr)
                return 1
            written = cases.save(name, result)
            size = sum(p.stat().st_size for p in written)
            print(f"{name}: {size / 1024:.1f} KiB in {', '.join(p.name for p in written)} "
                  f"({time.perf_counter() - start:.1f} s for both runs)")
    total = sum(p.stat().st_size for p in cases.GOLDEN_DIR.glob("*.*") if p.suffix in (".json", ".safetensors"))
    print(f"tests/golden: {total / 1024:.1f} KiB of golden files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
