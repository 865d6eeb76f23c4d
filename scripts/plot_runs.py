"""Plot one metric of several training runs against tokens seen (or steps), from their metrics.jsonl.

    python scripts/plot_runs.py --metric val_loss --x tokens --out curves.png runs/a runs/b ...
    python scripts/plot_runs.py --metric acc/qa2/0k --x steps --out qa2.png "step taken away=runs/a" runs/b

Tokens seen = step x train.batch_size x data.block_size (packed pretraining, where every block is full), read
from each run's config.yaml. Runs whose folder names differ only in a final ``-seed<N>`` are one line: the mean
over seeds, with their range shaded. A run given as LABEL=DIR is named LABEL in the figure and the table instead
of by its folder (runs given the same label are one line, as seeds are). Prints the final value of each line
(mean, standard deviation and each seed's value when there are several), so the figure has a table beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
from pathlib import Path

import yaml


def run_points(folder: Path, metric: str, x: str) -> list[tuple[float, float]]:
    for name in ("config.yaml", "metrics.jsonl"):
        if not (folder / name).is_file():
            raise SystemExit(f"{folder}: no {name}; give the folder of an `lm2 train` run (its --out_dir)")
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    per_step = cfg["train"]["batch_size"] * cfg["data"]["block_size"] if x == "tokens" else 1
    points = []
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "eval" and metric in record:
            points.append((record["step"] * per_step, record[metric]))
    if not points:
        raise SystemExit(f"{folder}: no eval record with {metric!r} in metrics.jsonl")
    return points


def group_by_seed(items: list[str]) -> dict[str, list[Path]]:
    """The lines to draw: each run's label (LABEL=DIR) or its folder's name less a final -seed<N>, with its runs."""
    groups: dict[str, list[Path]] = {}
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep:
            label, folder = re.sub(r"-seed\d+$", "", Path(item).name), item
        elif not label or not folder:
            raise SystemExit(f"{item!r}: write LABEL=DIR (a label and a run folder) or DIR alone")
        groups.setdefault(label, []).append(Path(folder))
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run folders (holding metrics.jsonl and config.yaml), each DIR or "
                                                 "LABEL=DIR")
    parser.add_argument("--metric", default="val_loss")
    parser.add_argument("--x", choices=["tokens", "steps"], default="tokens")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    from lm2.viz.curves import plot_lines

    is_loss = "loss" in args.metric
    groups = group_by_seed(args.runs)
    width = max(28, *(len(name) for name in groups))
    print(f"{'run':{width}} {'seeds':>5} {args.metric:>10} {'std':>7} {'perplexity' if is_loss else '':>10}  per seed")
    series = {}
    for name, folders in groups.items():
        runs = [run_points(folder, args.metric, args.x) for folder in folders]
        steps = min(len(points) for points in runs)  # a run stopped early: plot the evaluations all have
        xs = [p[0] for p in runs[0][:steps]]
        columns = [[points[i][1] for points in runs] for i in range(steps)]
        means = [statistics.fmean(c) for c in columns]
        label = name if len(runs) == 1 else f"{name} ({len(runs)} seeds)"
        series[label] = (xs, means) if len(runs) == 1 else (xs, means, [min(c) for c in columns],
                                                             [max(c) for c in columns])
        final = columns[-1]
        std = f"{statistics.stdev(final):7.4f}" if len(final) > 1 else f"{'-':>7}"
        ppl = f"{math.exp(means[-1]):10.2f}" if is_loss else f"{'':10}"
        print(f"{name:{width}} {len(runs):5d} {means[-1]:10.4f} {std} {ppl}  " + " ".join(f"{v:.4f}" for v in final))
    xlabel = "tokens seen" if args.x == "tokens" else "step"
    print(f"plot: {plot_lines(series, args.out, xlabel, args.metric)}")


if __name__ == "__main__":
    main()
