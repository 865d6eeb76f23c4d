"""Compare two `lm2 eval mmlu` runs over the same questions (in any order of subjects), question by question: accuracy, predictions that
changed (gained / lost), each run's share of every answer letter, and how far the choices' log-likelihoods moved.

    python scripts/compare_mmlu.py runs/mmlu-base runs/mmlu-other [--form letter --shots 0] [--common-subjects]

--common-subjects compares only the subjects both runs scored (e.g. a full run against one over some subjects).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from lm2.eval.mmlu import read_results


def by_subject(run: list[dict]) -> list[dict]:
    """A run's records grouped by subject in name order, each subject's questions in their order: runs merged
    from parts list their subjects part by part, one run in file order."""
    return sorted(run, key=lambda r: r["subject"])


def compare(base: list[dict], other: list[dict]) -> dict:
    base, other = by_subject(base), by_subject(other)
    if [(r["subject"], r["answer"]) for r in base] != [(r["subject"], r["answer"]) for r in other]:
        raise ValueError("the two runs are not over the same questions (other --subjects or --limit?)")
    moved = [max(abs(a - b) for a, b in zip(r["loglikelihoods"], s["loglikelihoods"])) for r, s in zip(base, other)]
    n = len(base)
    return {
        "questions": n,
        "accuracy": [100.0 * sum(r["correct"] for r in run) / n for run in (base, other)],
        "changed": sum(r["pred"] != s["pred"] for r, s in zip(base, other)),
        "gained": sum(s["correct"] and not r["correct"] for r, s in zip(base, other)),
        "lost": sum(r["correct"] and not s["correct"] for r, s in zip(base, other)),
        "letter_share": [{"ABCD"[c]: 100.0 * sum(r["pred"] == c for r in run) / n for c in range(4)}
                         for run in (base, other)],
        "loglikelihood_moved": {"mean": statistics.mean(moved), "max": max(moved)},
    }


def common_subjects(base: list[dict], other: list[dict]) -> tuple[list[dict], list[dict]]:
    """Both runs' records of the subjects both have."""
    shared = {r["subject"] for r in base} & {r["subject"] for r in other}
    if not shared:
        raise ValueError("the two runs have no subject in common")
    return [r for r in base if r["subject"] in shared], [r for r in other if r["subject"] in shared]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--form", default="letter")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--common-subjects", action="store_true", help="compare only the subjects both runs have")
    args = parser.parse_args()
    try:
        runs = read_results(args.base, args.form, args.shots)[1], read_results(args.other, args.form, args.shots)[1]
        if args.common_subjects:
            runs = common_subjects(*runs)
        result = compare(*runs)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None
    print(f"{result['questions']} questions; accuracy {result['accuracy'][0]:.2f} -> {result['accuracy'][1]:.2f}; "
          f"{result['changed']} predictions changed ({result['gained']} gained, {result['lost']} lost)")
    for name, share in zip((args.base, args.other), result["letter_share"]):
        print(f"answer letters of {name}: " + ", ".join(f"{k} {v:.1f}%" for k, v in share.items()))
    print(f"largest change of a choice's log-likelihood per question: mean "
          f"{result['loglikelihood_moved']['mean']:.3f}, max {result['loglikelihood_moved']['max']:.2f} nats")


if __name__ == "__main__":
    main()
