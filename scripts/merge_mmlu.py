"""Merge `lm2 eval mmlu` results of disjoint subject sets (e.g. two halves run side by side, one thread each)
into one Table 2 and one lm-evaluation-harness comparison.

    python scripts/merge_mmlu.py --out runs/mmlu-full runs/mmlu-half-a runs/mmlu-half-b [--form letter --shots 0]

Each folder holds mmlu_<form>_<shots>shot.json and its _predictions.jsonl. Category, level and average are
recomputed from the per-question records (every question counts once); the lm-eval check, where every part has
one, is summed over subjects. Writes the merged JSON and predictions to --out and prints the table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lm2.eval.mmlu import format_check, overall_agreement, read_results, summarize, table2, write_results


def merge_checks(checks: list[dict], records: list[dict]) -> dict:
    subjects = {s: v for check in checks for s, v in check["subjects"].items()}
    ours = sum(r["correct"] for r in records) * 100.0 / len(records)
    return {
        "form": checks[0]["form"], "shots": checks[0]["shots"], "limit": checks[0]["limit"],
        **overall_agreement(subjects, ours, checks[0]["tolerance"]),
        "prompt_mismatches": sum(c["prompt_mismatches"] for c in checks),
        "prediction_mismatches": sum(c["prediction_mismatches"] for c in checks),
        "max_loglikelihood_difference": max(c["max_loglikelihood_difference"] for c in checks),
        "seconds": sum(c.get("seconds", 0.0) for c in checks),
        "subjects": dict(sorted(subjects.items())),
    }


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
    checks = [s.get("lm_eval_check") for s in summaries]
    if all(checks):
        merged["lm_eval_check"] = merge_checks(checks, records)
    write_results(args.out, merged, records)

    print(table2(merged, f"MMLU accuracy (%), {args.form} form, {args.shots}-shot, {len(records)} questions"))
    print(f"macro average over {len(merged['subjects'])} subjects: {merged['macro_average']:.2f}")
    check = merged.get("lm_eval_check")
    if check:
        print(format_check(check))
    elif any(checks):
        print("lm-eval check: only some parts have one; not merged")
    print(f"written to {args.out}/")
    if check and not check["agree"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
