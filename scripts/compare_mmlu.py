"""Compare two `lm2 eval mmlu` runs over the same questions (in any order of subjects), question by question:
accuracy, predictions that changed (gained / lost), each run's share of every answer letter, and how far the
choices' log-likelihoods moved.

    python scripts/compare_mmlu.py runs/mmlu-base runs/mmlu-other [--form letter --shots 0] [--common-subjects]

--common-subjects compares only the subjects both runs scored (e.g. a full run against one over some subjects).

Either run may also be a summary JSON alone (e.g. docs/results/*.json, whose per-question records are not kept):
the comparison is then by subject (accuracy by category, level and overall; subjects up, down and level; the
largest moves), which a pair of folders also prints. --plot PATH draws every subject's accuracy in one run
against the other (marker area by number of questions; the largest moves named).
"""

from __future__ import annotations

import argparse
import json
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


def read_run(path: Path, form: str, shots: int) -> tuple[dict, list[dict] | None]:
    """A run's summary and per-question records: a run folder, or a summary JSON alone (records None)."""
    if path.is_file():
        summary = json.loads(path.read_text(encoding="utf-8"))
        if "subjects" not in summary:
            raise ValueError(f"{path} is not an `lm2 eval mmlu` summary (it has no 'subjects')")
        return summary, None
    return read_results(path, form, shots)


def compare_summaries(base: dict, other: dict) -> dict:
    """Per-subject comparison of two summaries over the same subjects with the same number of questions each."""
    sizes = [{s: v["n"] for s, v in run["subjects"].items()} for run in (base, other)]
    if sizes[0] != sizes[1]:
        raise ValueError("the two runs are not over the same subjects and numbers of questions")
    moves = {s: other["subjects"][s]["acc"] - base["subjects"][s]["acc"] for s in sizes[0]}
    order = sorted(moves, key=moves.get)
    return {
        "groups": {f"{label} {name}": (base[kind][name]["acc"], other[kind][name]["acc"], base[kind][name]["n"])
                   for kind, label in (("categories", "category"), ("levels", "level")) for name in base[kind]}
        | {"average": (base["average"]["acc"], other["average"]["acc"], base["average"]["n"])},
        "up": sum(m > 0 for m in moves.values()), "down": sum(m < 0 for m in moves.values()),
        "level": sum(m == 0 for m in moves.values()),
        "largest": [(s, moves[s], sizes[0][s]) for s in order[:3] + order[-3:][::-1]],
    }


def print_summary_comparison(result: dict) -> None:
    for name, (a, b, n) in result["groups"].items():
        print(f"{name:<34} {a:6.2f} -> {b:6.2f}  ({b - a:+.2f}, n = {n})")
    print(f"subjects: {result['up']} up, {result['down']} down, {result['level']} level; largest moves: "
          + ", ".join(f"{s} {m:+.1f} (n = {n})" for s, m, n in result["largest"]))


def plot_subjects(base: dict, other: dict, names: tuple[str, str], path: Path, label: int = 3) -> None:
    """Scatter of per-subject accuracy, base (x) against other (y), with the diagonal and the ``label`` largest
    moves each way named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    subjects = sorted(base["subjects"])
    x = [base["subjects"][s]["acc"] for s in subjects]
    y = [other["subjects"][s]["acc"] for s in subjects]
    n = [base["subjects"][s]["n"] for s in subjects]
    fig, ax = plt.subplots(figsize=(6.2, 6))
    ax.scatter(x, y, s=[k / 4 for k in n], alpha=0.6, color="tab:blue", edgecolor="k", linewidth=0.4)
    low, high = min(x + y) - 2, max(x + y) + 2
    ax.plot([low, high], [low, high], color="0.4", linewidth=0.8, linestyle="--")
    ax.axhline(25, color="tab:red", linewidth=0.6, alpha=0.5)
    ax.axvline(25, color="tab:red", linewidth=0.6, alpha=0.5)
    moves = sorted(range(len(subjects)), key=lambda i: y[i] - x[i])
    for i in moves[:label] + moves[-label:]:
        if y[i] != x[i]:
            ax.annotate(subjects[i].replace("_", " "), (x[i], y[i]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel(f"{names[0]}: accuracy per subject (%)")
    ax.set_ylabel(f"{names[1]}: accuracy per subject (%)")
    ax.set_title(f"MMLU by subject: {base['average']['acc']:.2f} -> {other['average']['acc']:.2f} overall "
                 f"(dashed: equal; red: chance)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--form", default="letter")
    parser.add_argument("--shots", type=int, default=0)
    parser.add_argument("--common-subjects", action="store_true", help="compare only the subjects both runs have")
    parser.add_argument("--plot", type=Path, help="write a per-subject scatter plot (PNG) here")
    parser.add_argument("--names", nargs=2, default=("base", "other"), help="the two runs' names in the plot")
    args = parser.parse_args()
    try:
        (base, base_records), (other, other_records) = (read_run(path, args.form, args.shots)
                                                         for path in (args.base, args.other))
        if args.plot:
            compare_summaries(base, other)  # the same subjects and sizes, or a clear error
            plot_subjects(base, other, tuple(args.names), args.plot)
            print(f"plot: {args.plot}")
        if base_records is None or other_records is None:
            print_summary_comparison(compare_summaries(base, other))
            return
        runs = base_records, other_records
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
    if not args.common_subjects:
        print_summary_comparison(compare_summaries(base, other))


if __name__ == "__main__":
    main()
