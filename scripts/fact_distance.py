"""Does the memory carry the fact? BABILong accuracy split by how far back the answer's fact lies.

For each test sample of a task and length, counts the tokens (the models' tokenizer) from the end of the last
supporting fact to the answer position, and splits the `lm2 eval babilong` answers at the attention window: a
fact within the window can be read by attention, one beyond it only through what the model carried (LM2's
memory, RMT's memory tokens; a model without memory has nothing there). Prints, per model and length, the
accuracy on each side and the best constant answer on the same questions.

    python scripts/fact_distance.py --tokenizer CKPT --window 128 --lengths 1k,2k,4k LM2=EVAL_DIR vanilla=EVAL_DIR

The samples are rebuilt exactly as `lm2 eval babilong` built them (test split, --seed, --n = the CSVs' rows);
nothing here runs a model.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from transformers import AutoTokenizer

from lm2.data.babilong import build_samples, finetune_prompt
from lm2.eval.babilong_scoring import exact_match, label_score, read_predictions


def distance(sample, tokenizer) -> int:
    """Tokens from the end of the last supporting fact to the end of the prompt (the answer position)."""
    fact = sample.facts[max(sample.supporting)] if sample.supporting else sample.facts[-1]
    end = sample.context.rindex(fact) + len(fact)  # the last occurrence: a later copy would be the later fact
    prompt = finetune_prompt(sample)
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return count(prompt) - count(prompt[:end])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=EVAL_DIR (the folders of `lm2 eval babilong`)")
    parser.add_argument("--tokenizer", required=True, help="a checkpoint folder: the models' tokenizer")
    parser.add_argument("--window", type=int, default=128, help="the attention window in tokens")
    parser.add_argument("--lengths", default="1k,2k,4k")
    parser.add_argument("--task", default="qa1")
    parser.add_argument("--seed", type=int, default=0, help="the test seed the evaluations used")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    runs = [(name, Path(folder)) for name, _, folder in (item.partition("=") for item in args.runs)]
    print(f"{args.task}, accuracy (%) by where the answer's fact lies: within the last {args.window} tokens "
          f"(attention can read it) or beyond them (only a carried state can); test seed {args.seed}\n")
    print("| length | questions within / beyond | " + " | ".join(f"{name} within / beyond" for name, _ in runs)
          + " | constant answer within / beyond |")
    print("|---|---:|" + "---:|" * (len(runs) + 1))
    for length in args.lengths.split(","):
        answers = {}
        for name, folder in runs:
            rule = json.loads((folder / "summary.json").read_text()).get("rule", "exact")
            rows = read_predictions(folder / f"{args.task}_{length}.csv")
            answers[name] = [exact_match(r["output"], r["target"]) if rule == "exact"
                             else label_score(r["output"], r["target"], r["question"], args.task) for r in rows]
        n = len(next(iter(answers.values())))
        samples = build_samples(args.task, length, n, split="test", seed=args.seed)
        near = [distance(s, tokenizer) <= args.window for s in samples]
        sides = {"within": [i for i in range(n) if near[i]], "beyond": [i for i in range(n) if not near[i]]}
        targets = [s.target for s in samples]
        cells = [f"{pct(answers[name], sides['within'])} / {pct(answers[name], sides['beyond'])}" for name, _ in runs]
        print(f"| {length} | {len(sides['within'])} / {len(sides['beyond'])} | " + " | ".join(cells)
              + f" | {constant(targets, sides['within'])} / {constant(targets, sides['beyond'])} |")


def pct(right: list[bool], idx: list[int]) -> str:
    return f"{100 * sum(right[i] for i in idx) / len(idx):.0f}" if idx else "-"


def constant(targets: list[str], idx: list[int]) -> str:
    """The best constant answer's accuracy on these questions (their most frequent target)."""
    if not idx:
        return "-"
    return f"{100 * Counter(targets[i] for i in idx).most_common(1)[0][1] / len(idx):.0f}"


if __name__ == "__main__":
    main()
