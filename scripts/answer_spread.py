"""Which answers a BABILong model gives, against the answers it should give, and accuracy by question form.

A model that has learned the kind of answer a question wants (a person for "Who received the milk?", an object
for "What did Fred give to Bill?") but not which one writes a few answers over and over; one that looks facts up
spreads its answers like the targets. Reads the CSVs `lm2 eval babilong --out DIR` writes (target, output and
question columns; one row per test sample):

    python scripts/answer_spread.py runs/exp14/vanilla/eval --task qa5 [--length 0k]
    python scripts/answer_spread.py a/eval b/eval --task qa5      # several runs, one block each

The question form replaces each person with P and each object with O ("Who gave the O to P?").
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

from lm2.data.babi import check_task
from lm2.data.babi.common import ACTORS, OBJECTS, QA5_ACTORS, QA10_ACTORS
from lm2.eval.babilong_scoring import exact_match, read_predictions

PEOPLE = re.compile(r"\b(" + "|".join(sorted(set(ACTORS + QA5_ACTORS + QA10_ACTORS))) + r")\b")
THINGS = re.compile(r"\b(" + "|".join(OBJECTS) + r")\b")


def question_form(question: str) -> str:
    return THINGS.sub("O", PEOPLE.sub("P", question.strip()))


def first_word(output: str) -> str:
    words = output.split()
    return words[0].strip(".,") if words else "(empty)"


def spread(rows: list[dict[str, str]]) -> None:
    given, wanted = Counter(first_word(r["output"]) for r in rows), Counter(r["target"] for r in rows)
    n = len(rows)
    print(f"  answers given ({len(given)} distinct): " + ", ".join(f"{a} {c}" for a, c in given.most_common()))
    print(f"  answers wanted ({len(wanted)} distinct): " + ", ".join(f"{a} {c}" for a, c in wanted.most_common()))
    forms: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        forms[question_form(r["question"])].append(exact_match(r["output"], r["target"]))
    print(f"  accuracy by question form (exact match; {n} questions):")
    for form, hits in sorted(forms.items(), key=lambda kv: -len(kv[1])):
        print(f"    {form:32s} {100 * sum(hits) / len(hits):5.1f}%  of {len(hits)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evals", nargs="+", help="folders written by lm2 eval babilong --out")
    parser.add_argument("--task", required=True, help="e.g. qa5")
    parser.add_argument("--length", default="0k")
    args = parser.parse_args()
    try:
        task = check_task(args.task)
    except ValueError as err:
        parser.error(str(err))
    for folder in args.evals:
        path = Path(folder) / f"{task}_{args.length}.csv"
        if not path.is_file():
            raise SystemExit(f"{path} not found: run lm2 eval babilong --tasks {task} --lengths {args.length} "
                             f"--out {folder} first")
        print(f"{folder}: {task} at {args.length}")
        spread(read_predictions(path))


if __name__ == "__main__":
    main()
