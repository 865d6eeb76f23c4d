"""Compare `lm2 eval babilong` results of several models: a table laid out like the LM2 paper's Table 1 (rows:
models; columns: lengths; cells: accuracy averaged over the evaluated tasks), task by task when there are
several, a plot of accuracy by length and, with --heatmap, the task x length heatmaps side by side.

    python scripts/compare_babilong.py --out cmp.png [--heatmap heat.png] NAME=EVAL_DIR [NAME=EVAL_DIR ...]

Each EVAL_DIR holds the summary.json written by `lm2 eval babilong`. Prints the table as Markdown. NAME=DIR1,DIR2,...
(one folder per seed) averages the runs: the table gives the mean and the range over them, the plot the mean with
the range shaded, at the lengths every one of them has.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=EVAL_DIR")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--chance", default=None, help="draw a reference line: an accuracy in %% (e.g. 16.7, one "
                        "place in six), or 'majority' for the best constant answer (a task's most frequent target, "
                        "counted in the first run's answer files), averaged over tasks")
    parser.add_argument("--heatmap", type=Path, default=None, help="also save one task x length heatmap per run "
                        "(with a row for the mean over tasks), side by side")
    args = parser.parse_args()
    hline = None if args.chance is None else chance_line(args.chance, args.runs[0].partition("=")[2].split(",")[0])

    from lm2.data.babilong import parse_length

    summaries, ranges = {}, {}  # name -> the run's summary.json (the average of its seeds'); (lows, highs)
    for item in args.runs:
        name, _, folders = item.partition("=")
        seeds = [json.loads((Path(folder) / "summary.json").read_text()) for folder in folders.split(",")]
        summaries[name] = seeds[0] if len(seeds) == 1 else average(seeds)
        if len(seeds) > 1:
            ranges[name] = ({k: min(s["mean"][k] for s in seeds) for k in summaries[name]["mean"]},
                            {k: max(s["mean"][k] for s in seeds) for k in summaries[name]["mean"]})
    means = {name: summary["mean"] for name, summary in summaries.items()}
    lengths = sorted({k for summary in summaries.values() for values in summary["accuracy"].values() for k in values},
                     key=parse_length)  # every length any run has a result for

    def cell(values, k, name=None):
        if k not in values:
            return "-"
        spread = f" ({ranges[name][0][k]:.0f}-{ranges[name][1][k]:.0f})" if name in ranges else ""
        return f"{values[k]:.1f}{spread}"

    print(f"Accuracy (%), mean over {', '.join(next(iter(summaries.values()))['tasks'])}:\n")
    print("| model | " + " | ".join(lengths) + " |")
    print("|---|" + "---:|" * len(lengths))
    for name, mean in means.items():
        print(f"| {name} | " + " | ".join(cell(mean, k, name) for k in lengths) + " |")
    if any(len(summary["tasks"]) > 1 for summary in summaries.values()):  # and task by task
        print("\n| model | task | " + " | ".join(lengths) + " |")
        print("|---|---|" + "---:|" * len(lengths))
        for name, summary in summaries.items():
            for task in summary["tasks"]:
                values = summary["accuracy"].get(task, {})
                print(f"| {name} | {task} | " + " | ".join(cell(values, k) for k in lengths) + " |")

    from lm2.viz.curves import plot_lines

    series = {}
    for name, mean in means.items():
        xs = [k for k in lengths if k in mean]
        series[name] = (xs, [mean[k] for k in xs])
        if name in ranges:
            series[name] += ([ranges[name][0][k] for k in xs], [ranges[name][1][k] for k in xs])
    plot_lines(series, args.out, "context length (GPT-2 tokens)", "accuracy (%)", hline=hline, ylim=(0, 100),
               categories=lengths)
    print(f"\nplot: {args.out}")
    if args.heatmap:
        from lm2.viz.babilong import plot_heatmaps

        tasks = list(dict.fromkeys(task for summary in summaries.values() for task in summary["tasks"]))
        panels = {name: {**summary["accuracy"], "mean": summary["mean"]} for name, summary in summaries.items()}
        plot_heatmaps(panels, tasks + ["mean"], lengths, args.heatmap)
        print(f"heatmap: {args.heatmap}")


def average(seeds: list[dict]) -> dict:
    """The summary of several seeds' runs: accuracies averaged at the tasks and lengths all of them have."""
    tasks = [t for t in seeds[0]["tasks"] if all(t in s["accuracy"] for s in seeds)]
    accuracy = {t: {k: sum(s["accuracy"][t][k] for s in seeds) / len(seeds) for k in seeds[0]["accuracy"][t]
                    if all(k in s["accuracy"][t] for s in seeds)} for t in tasks}
    mean = {k: sum(s["mean"][k] for s in seeds) / len(seeds) for k in seeds[0]["mean"]
            if all(k in s["mean"] for s in seeds)}
    return {**seeds[0], "tasks": tasks, "accuracy": accuracy, "mean": mean}


def chance_line(spec: str, first_run: str) -> tuple[float, str]:
    """The --chance line: (accuracy, label)."""
    if spec != "majority":
        try:
            return float(spec), "chance"
        except ValueError:
            raise SystemExit(f"--chance takes an accuracy in % or 'majority', not {spec!r}") from None
    from lm2.eval.babilong import majority_baseline

    shares = majority_baseline(first_run)
    mean = sum(shares.values()) / len(shares)
    print("\nBest constant answer (most frequent target, %): "
          + ", ".join(f"{task} {share:.1f}" for task, share in shares.items()) + f"; mean {mean:.1f}")
    return mean, "best constant answer"


if __name__ == "__main__":
    main()
