"""Plot one metric of several training runs against tokens seen (or steps), from their metrics.jsonl.

    python scripts/plot_runs.py --metric val_loss --x tokens --out curves.png runs/a runs/b ...

Tokens seen = step x train.batch_size x data.block_size (packed pretraining, where every block is full),
read from each run's config.yaml. Also prints the final value of each run, so the figure has a table beside it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import yaml


def run_points(folder: Path, metric: str, x: str) -> list[tuple[float, float]]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--metric", default="val_loss")
    parser.add_argument("--x", choices=["tokens", "steps"], default="tokens")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    print(f"{'run':40} {args.metric:>10} {'perplexity' if 'loss' in args.metric else '':>10}")
    for folder in args.runs:
        points = run_points(folder, args.metric, args.x)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=folder.name)
        final = points[-1][1]
        ppl = f"{math.exp(final):10.2f}" if "loss" in args.metric else ""
        print(f"{folder.name:40} {final:10.4f} {ppl}")
    ax.set_xlabel("tokens seen" if args.x == "tokens" else "step")
    ax.set_ylabel(args.metric)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"plot: {args.out}")


if __name__ == "__main__":
    main()
