"""Is model A ahead of model B on BABILong, beyond chance? A paired comparison of `lm2 eval babilong` answers.

Both models answered the same test samples (the same seed and n), so each sample is a pair: A right and B wrong,
B right and A wrong, or both the same. For each task and length, and pooled over the lengths asked for, prints A's
and B's accuracy, the difference, the discordant pairs and the exact two-sided sign (McNemar) test on them, and a
95% interval for the difference from a paired bootstrap (the test samples resampled within each task and length,
one draw for every run, since all runs answered the same samples).

    python scripts/paired_babilong.py --lengths 1k,2k,4k,8k LM2=DIR[,DIR...] vanilla=DIR[,DIR...]

With several folders per model (one per seed), the i-th folder of A is paired with the i-th of B (the same
backbone seed); the pooled line counts every pair of every seed. The test and the interval are about these trained
models on this test distribution; how much the difference moves from seed to seed is in the per-seed table.
The sign test counts every pair as independent, which runs on the same samples are not; the interval does not.
"""

from __future__ import annotations

import argparse
import math
import random
from pathlib import Path

from lm2.eval.babilong_scoring import scored_predictions


def sign_test(b: int, c: int) -> float:
    """Two-sided exact binomial p-value of b successes in b + c trials at one half."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def compare(strata: list[list[tuple[list[bool], list[bool]]]], draws: int, rng: random.Random) -> dict:
    """Accuracies, difference (points), discordant counts, sign-test p and bootstrap 95% interval. Each stratum
    (a task and length) holds the (A, B) answers of every run on the same samples."""
    a = [x for runs in strata for ga, _ in runs for x in ga]
    b = [x for runs in strata for _, gb in runs for x in gb]
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    per_sample = [[sum(ga[i] - gb[i] for ga, gb in runs) for i in range(len(runs[0][0]))] for runs in strata]
    diffs = []
    for _ in range(draws):
        total = sum(d[rng.randrange(len(d))] for d in per_sample for _ in range(len(d)))
        diffs.append(100 * total / len(a))
    diffs.sort()
    return {"a": 100 * sum(a) / len(a), "b": 100 * sum(b) / len(b), "diff": 100 * (sum(a) - sum(b)) / len(a),
            "n": len(a), "a_only": a_only, "b_only": b_only, "p": sign_test(a_only, b_only),
            "low": diffs[int(0.025 * draws)], "high": diffs[int(0.975 * draws) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="NAME=DIR[,DIR...]: the model said to be ahead")
    parser.add_argument("b", help="NAME=DIR[,DIR...]: the model it is compared with")
    parser.add_argument("--lengths", default="1k,2k,4k,8k", help="the lengths to compare and pool")
    parser.add_argument("--tasks", default="qa1")
    parser.add_argument("--draws", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's random seed")
    args = parser.parse_args()
    (name_a, _, dirs_a), (name_b, _, dirs_b) = args.a.partition("="), args.b.partition("=")
    folders_a, folders_b = [Path(d) for d in dirs_a.split(",")], [Path(d) for d in dirs_b.split(",")]
    if len(folders_a) != len(folders_b):
        raise SystemExit(f"{name_a} has {len(folders_a)} folders and {name_b} {len(folders_b)}: pair them seed by seed")
    rng = random.Random(args.seed)
    rows, pooled = [], []
    for task in args.tasks.split(","):
        for length in args.lengths.split(","):
            runs = []
            for fa, fb in zip(folders_a, folders_b):
                ca, cb = scored_predictions(fa, task, length)[1], scored_predictions(fb, task, length)[1]
                if len(ca) != len(cb):
                    raise SystemExit(f"{fa} and {fb} hold {len(ca)} and {len(cb)} answers at {task} {length}: "
                                     "evaluate both on the same samples (the same --n and seed)")
                runs.append((ca, cb))
            if len({len(ca) for ca, _ in runs}) > 1:
                raise SystemExit(f"the runs hold different numbers of answers at {task} {length}: use the same --n")
            pooled.append(runs)
            rows.append((f"{task} {length}", compare([runs], args.draws, rng)))
    rows.append(("pooled", compare(pooled, args.draws, rng)))
    print(f"{name_a} against {name_b}, {len(folders_a)} paired run(s) each; accuracy (%), difference in points, "
          f"pairs where only one is right, exact sign test, paired bootstrap 95% interval ({args.draws} draws)\n")
    print(f"| {'':<12} | n | {name_a} | {name_b} | difference | only {name_a} | only {name_b} | p | 95% interval |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for label, r in rows:
        print(f"| {label:<12} | {r['n']} | {r['a']:.1f} | {r['b']:.1f} | {r['diff']:+.1f} | {r['a_only']} | "
              f"{r['b_only']} | {r['p']:.2g} | [{r['low']:+.1f}, {r['high']:+.1f}] |")


if __name__ == "__main__":
    main()
