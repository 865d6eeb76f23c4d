"""Print a BABILong qa1 prompt (fine-tuning format, up to the answer marker) whose supporting fact lies far
from the question, for the test-time update figure (RESULTS.md, experiment 5).

    python scripts/far_fact_prompt.py [--length 1k] [--seed 0] > prompt.txt

Among 50 test samples it picks the one whose (last) supporting fact is earliest in the context, and reports on
stderr where the fact is, the question and the answer.
"""

from __future__ import annotations

import argparse
import sys

from lm2.data.babilong import build_samples, finetune_prompt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="qa1")
    parser.add_argument("--length", default="1k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    samples = build_samples(args.task, args.length, n=50, split="test", seed=args.seed)

    def fact_position(sample) -> int:
        fact = sample.facts[max(sample.supporting)]
        return sample.context.find(fact)

    sample = min(samples, key=lambda s: fact_position(s) / max(1, len(s.context)))
    prompt = finetune_prompt(sample)
    where = fact_position(sample)
    print(f"supporting fact {sample.facts[max(sample.supporting)]!r} at character {where} of {len(prompt)}; "
          f"question {sample.question!r}, answer {sample.target!r}", file=sys.stderr)
    sys.stdout.write(prompt)


if __name__ == "__main__":
    main()
