"""Merge `lm2 eval mmlu` results of disjoint subject sets (e.g. two halves run side by side, one thread each)
into one Table 2.

    python scripts/merge_mmlu.py --out runs/mmlu-full runs/mmlu-half-a runs/mmlu-half-b [--form letter --shots 0]

Each folder holds mmlu_<form>_<shots>shot.json and its _predictions.jsonl. Category, level and average are
recomputed from the per-question records (every question counts once). Writes the merged JSON and predictions to
--out and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lm2.eval.mmlu import read_results, summarize, table2, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--form", default="letter")
    parser.add_argument("--shots", type=int, default=0)
    args = parser.parse_args()

    summaries, records = [], []
    for part in args.parts:
        try:
            summary, part_records = read_results(part, args.form, args.shots)
        except (FileNotFoundError, ValueError) as err:
            raise SystemExit(str(err)) from None
        summaries.append(summary)
        records += part_records
    seen: dict[str, Path] = {}
    for part, summary in zip(args.parts, summaries):
        for subject in summary["subjects"]:
            if subject in seen:
                raise SystemExit(f"{subject} is in both {seen[subject]} and {part}: the parts must be disjoint")
            seen[subject] = part
    merged = {**{k: summaries[0][k] for k in ("model", "model_kind", "form", "shots", "limit", "batch_size",
                                               "device")},
              "parts": [str(p) for p in args.parts],
              "seconds": sum(s["seconds"] for s in summaries),
              "seconds_per_question": sum(s["seconds"] for s in summaries) / len(records),
              **summarize(records)}
    write_results(args.out, merged, records)

    print(table2(merged, f"MMLU accuracy (%), {args.form} form, {args.shots}-shot, {len(records)} questions"))
    print(f"macro average over {len(merged['subjects'])} subjects: {merged['macro_average']:.2f}")
    print(f"written to {args.out}/")


if __name__ == "__main__":
    main()
