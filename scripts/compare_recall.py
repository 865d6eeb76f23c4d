"""Plot several `lm2 eval recall` results in one figure: python scripts/compare_recall.py --out FIG LABEL=DIR ..."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lm2.viz.recall import plot_recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+", help="LABEL=DIR, DIR holding the recall.json of `lm2 eval recall`")
    parser.add_argument("--out", required=True, help="the figure (.png)")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    summaries = {}
    for item in args.runs:
        label, sep, folder = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: write LABEL=DIR")
        file = Path(folder) / "recall.json"
        if not file.is_file():
            parser.error(f"{file} does not exist: run `lm2 eval recall --out {folder}` first")
        summaries[label] = json.loads(file.read_text())
        print(f"{label:>24}: " + ", ".join(f"{d} segments {a:.1f}" for d, a in summaries[label]["accuracy"].items()))
    print(f"figure: {plot_recall(summaries, args.out, args.title)}")


if __name__ == "__main__":
    main()
