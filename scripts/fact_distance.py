"""Does the memory carry the fact? BABILong accuracy split by how far back the answer's fact lies.

For each test sample of a task and length, counts the tokens (the models' tokenizer) from the end of the last
supporting fact to the answer position, and splits the `lm2 eval babilong` answers into bands at the given
distances (--window; the reach of attention, see below). A fact within reach can be read by attention; one beyond
the last edge only through what the model carried (LM2's memory, RMT's memory tokens; a model without memory has
nothing there). Prints, per model and length, the accuracy in each band and the best constant answer on the same
questions.

With --by-statements, a further table splits each length's questions by how many statements the sample holds (a
story cut at its question point: at one length, fewer statements leave more background between them).

With --last-move, a second table splits the questions beyond the last window again: is the person asked about the one
who made the story's last move (then the last room mentioned is the answer) or not, with each model's accuracy on
both, and how often its answer names the room of the last move, right or wrong. A model that carries only the
latest move answers the first kind and fails the second.

    python scripts/fact_distance.py --tokenizer CKPT --window 128,512 --lengths 1k,2k,4k LM2=EVAL_DIR vanilla=EVAL_DIR

With --first-fact the distance is taken from the first supporting fact, the one furthest back: a task that needs
several facts (qa2-qa5) needs that one too. --task takes several tasks (qa1,qa2,qa3,qa4,qa5): each row then pools
their questions, and the constant answer is each task's own most frequent answer on its questions in the band.

Stacked windows reach further than one: with a window of W tokens in each of L blocks, a token's state can draw on
about L * W tokens before it (each block reads the previous block's states, which read W further back), so a fact
between W and L * W tokens back is not beyond the attention of a model without memory, only of its single block.
--window W,L*W separates the two.

The samples are rebuilt exactly as `lm2 eval babilong` built them (test split, --seed, --n = the CSVs' rows);
nothing here runs a model.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from transformers import AutoTokenizer

from lm2.data.babilong import build_samples
from lm2.eval.babilong_scoring import band_names, exact_match, scored_predictions, split_by_distance
from lm2.eval.babilong_scoring import fact_distance as distance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="NAME=EVAL_DIR (the folders of `lm2 eval babilong`)")
    parser.add_argument("--tokenizer", required=True, help="a checkpoint folder: the models' tokenizer")
    parser.add_argument("--window", default="128",
                        help="where to split, in tokens: the attention window, or several distances (e.g. 128,512: "
                             "one block's window and the reach of four stacked blocks) for bands between them")
    parser.add_argument("--lengths", default="1k,2k,4k")
    parser.add_argument("--task", default="qa1", help="a task, or several separated by commas (pooled)")
    parser.add_argument("--seed", type=int, default=0, help="the test seed the evaluations used")
    parser.add_argument("--first-fact", action="store_true",
                        help="measure from the first supporting fact, the one furthest back (qa2-qa5 need several)")
    parser.add_argument("--by-statements", action="store_true",
                        help="also split each length's questions by how many statements the sample holds (the "
                             "story up to its question point: fewer statements, more background between them)")
    parser.add_argument("--last-move", action="store_true",
                        help="also split the questions beyond the last window by whether the person asked about "
                             "moved last")
    args = parser.parse_args()
    try:
        edges = sorted({int(w) for w in args.window.split(",")})
    except ValueError:
        parser.error(f"--window {args.window!r}: give token counts separated by commas, e.g. 128 or 128,512")
    runs = [(name, Path(folder)) for name, _, folder in (item.partition("=") for item in args.runs)]
    for (name, folder), item in zip(runs, args.runs):
        if not name or not (folder / "summary.json").is_file():
            parser.error(f"{item!r}: give NAME=FOLDER, FOLDER being what `lm2 eval babilong --out` wrote "
                         "(it holds summary.json)")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    bands = " / ".join(band_names(edges))
    tasks = args.task.split(",")
    print(f"{' + '.join(tasks)}, accuracy (%) by how many tokens before the answer its fact ends ({bands}); "
          f"attention reads up to the window, beyond it only a carried state can; test seed {args.seed}\n")
    print(f"| length | questions {bands} | " + " | ".join(f"{name} {bands}" for name, _ in runs)
          + f" | constant answer {bands} |")
    print("|---|---:|" + "---:|" * (len(runs) + 1))
    beyond_rows, statement_rows = [], []
    for length in args.lengths.split(","):
        answers = {name: [] for name, _ in runs}
        outputs = {name: [] for name, _ in runs}
        samples, task_of = [], []
        for task in tasks:
            counts = {}
            for name, folder in runs:
                rows, right = scored_predictions(folder, task, length)
                answers[name] += right
                outputs[name] += [r["output"] for r in rows]
                counts[name] = len(rows)
            if len(set(counts.values())) > 1:
                parser.error(f"{task} at {length}: the evaluations hold different numbers of answers {counts}; "
                             "compare evaluations of the same --n and --seed")
            n = counts[runs[0][0]]
            samples += build_samples(task, length, n, split="test", seed=args.seed)
            task_of += [task] * n
        groups = split_by_distance([distance(s, tokenizer, args.first_fact) for s in samples], edges)
        targets = list(zip(task_of, [s.target for s in samples]))  # a constant answer is per task
        cells = [" / ".join(pct(answers[name], g) for g in groups) for name, _ in runs]
        print(f"| {length} | {' / '.join(str(len(g)) for g in groups)} | " + " | ".join(cells)
              + f" | {' / '.join(constant(targets, g) for g in groups)} |")
        if args.last_move:
            beyond_rows.append(last_move_row(length, samples, groups[-1], runs, answers, outputs))
        if args.by_statements:
            statement_rows += statements_rows(length, samples, runs, answers)
    if args.by_statements:
        print("\naccuracy (%) by the number of statements in the sample\n")
        print("| length | statements | questions | " + " | ".join(name for name, _ in runs) + " |")
        print("|---|---:|---:|" + "---:|" * len(runs))
        print("\n".join(statement_rows))
    if args.last_move:
        print(f"\nbeyond {edges[-1]} tokens: accuracy (%) when the person asked about made the story's last move / "
              f"when not, and the share of answers naming the last move's room\n")
        heads = " | ".join(f"{name} last / not | {name} names it" for name, _ in runs)
        print(f"| length | questions last / not | {heads} |")
        print("|---|---:|" + "---:|---:|" * len(runs))
        print("\n".join(beyond_rows))


def last_room(sample) -> str:
    """The room of the story's last move (the last word of its last fact)."""
    return sample.facts[-1].rstrip(". ").split()[-1]


def last_move_row(length, samples, beyond, runs, answers, outputs) -> str:
    """One Markdown row: the questions beyond the window split by whether the person asked about moved last."""
    moved_last = [i for i in beyond
                  if samples[i].supporting and max(samples[i].supporting) == len(samples[i].facts) - 1]
    other = [i for i in beyond if i not in moved_last]
    cells = []
    for name, _ in runs:
        names_it = sum(exact_match(outputs[name][i], last_room(samples[i])) for i in beyond)
        share = f"{100 * names_it / len(beyond):.0f}" if beyond else "-"
        cells.append(f"{pct(answers[name], moved_last)} / {pct(answers[name], other)} | {share}")
    return f"| {length} | {len(moved_last)} / {len(other)} | " + " | ".join(cells) + " |"


def statements_rows(length, samples, runs, answers) -> list[str]:
    """Markdown rows: one per number of statements among the samples, each model's accuracy on those questions."""
    by_count: dict[int, list[int]] = {}
    for i, sample in enumerate(samples):
        by_count.setdefault(len(sample.facts), []).append(i)
    return [f"| {length} | {count} | {len(idx)} | " + " | ".join(pct(answers[name], idx) for name, _ in runs) + " |"
            for count, idx in sorted(by_count.items())]


def pct(right: list[bool], idx: list[int]) -> str:
    return f"{100 * sum(right[i] for i in idx) / len(idx):.0f}" if idx else "-"


def constant(targets: list[tuple[str, str]], idx: list[int]) -> str:
    """The best constant answer's accuracy on these questions: each task's most frequent target among its
    questions here (``targets``: (task, target) pairs)."""
    if not idx:
        return "-"
    counts = Counter(targets[i] for i in idx)
    best = {}
    for (task, _), count in counts.items():
        best[task] = max(best.get(task, 0), count)
    return f"{100 * sum(best.values()) / len(idx):.0f}"


if __name__ == "__main__":
    main()
