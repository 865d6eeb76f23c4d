"""Whether a BABILong qa4 model reads the direction, or only which rooms a question's room is paired with.

bAbI qa4 states two relations that share one room ("The garden is west of the bathroom. The hallway is east of the
bathroom.") and asks one of two forms:

* "What is the garden west of?": the asked room is in one relation only, and the answer is the other room of that
  relation. The direction word is not needed: one lookup by the room answers it.
* "What is east of the bathroom?": the asked room is the shared one, in both relations, so the two other rooms are
  both candidates and only the direction tells them apart; "direct" when a statement says it in the question's
  words ("The hallway is east of the bathroom."), "inverse" when it says the opposite way round ("The bathroom is
  west of the hallway.").

A model that ignores the direction is right on the first form and right about half the time on the second (it
picks one of the two candidates). The second form is split further by the asked room's place in the two statements
(the object of both, of one and the subject of the other, the subject of both). Samples come from the train split
with a seed of their own (the test split stays unseen), at 0k:

    python scripts/qa4_direction.py runs/five/ckpt-002400 [--n 400] [--seed 4242]
    python scripts/qa4_direction.py runs/qa4/ckpt-001500 --compact The,the,is,of,What

--compact asks as a compact curriculum stage with bare questions lays a story out (``drop_words`` and
``bare_questions``): the statements and the question without those words, the question's "?" and the prompt's
markers ("office east bathroom. hallway west bathroom.\neast bathroom"), the answer read as the next token.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

import torch

_FACT = re.compile(r"The (\w+) is (north|south|east|west) of the (\w+)\.")
_PAIRED = re.compile(r"What is the (\w+) (north|south|east|west) of\?")  # the asked room in one relation
_PIVOT = re.compile(r"What is (north|south|east|west) of the (\w+)\?")  # the asked room in both


def question_form(facts: list[str], question: str) -> tuple[str, set[str]]:
    """The question's form ("one relation", "direct" or "inverse") and the rooms that could answer it: the rooms of
    the relations that name the asked room, less that room."""
    relations = [_FACT.fullmatch(f.strip()).groups() for f in facts]
    paired, pivot = _PAIRED.fullmatch(question.strip()), _PIVOT.fullmatch(question.strip())
    if not (paired or pivot):
        raise ValueError(f"not a qa4 question: {question!r}")
    asked, direction = (paired.group(1), paired.group(2)) if paired else (pivot.group(2), pivot.group(1))
    named = [(a, d, b) for a, d, b in relations if asked in (a, b)]
    candidates = {room for a, _, b in named for room in (a, b)} - {asked}
    if paired:
        if len(named) != 1:
            raise ValueError(f"{question!r}: its room is in {len(named)} relations of {facts}, not one")
        return "one relation", candidates
    if len(named) != 2:
        raise ValueError(f"{question!r}: its room is in {len(named)} relations of {facts}, not two")
    direct = any(b == asked and d == direction for a, d, b in named)
    return ("direct" if direct else "inverse"), candidates


def roles(facts: list[str], question: str) -> str:
    """Where the asked room of a two-relation question stands in the statements: "object of both", "object and
    subject" or "subject of both"."""
    asked = _PIVOT.fullmatch(question.strip()).group(2)
    places = sorted("object" if b == asked else "subject" for a, _, b in
                    (_FACT.fullmatch(f.strip()).groups() for f in facts) if asked in (a, b))
    return f"{places[0]} of both" if places[0] == places[1] else "object and subject"


def compact_answers(loaded, samples: list, drop: set[str]) -> list[str]:
    """Each sample asked in a bare-question stage's layout without the words ``drop``; the next token, greedy."""
    from lm2.data.babilong import drop_fact_words

    answers = []
    for sample in samples:
        facts = drop_fact_words(sample, sorted(drop)).facts
        question = " ".join(w for w in sample.question.rstrip("?").split() if w not in drop)
        ids = loaded.tokenizer(" ".join(facts) + "\n" + question, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = loaded.model(torch.tensor([ids])).logits
        answers.append(loaded.tokenizer.decode([int(logits[0, -1].argmax())]).strip())
    return answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint folder")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--seed", type=int, default=4242, help="train-split seed of the samples")
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--compact", default="", help="comma-separated words dropped from the statements and the "
                        "question, asked as a bare question (a compact curriculum stage's layout)")
    args = parser.parse_args()
    from lm2.data import babilong as bl
    from lm2.eval.babilong import answer_samples
    from lm2.eval.common import load_model

    torch.set_num_threads(1)
    loaded = load_model(args.model)
    samples = bl.build_samples("qa4", "0k", args.n, split="train", seed=args.seed)
    drop = {w for w in args.compact.split(",") if w}
    answers = (compact_answers(loaded, samples, drop) if drop
               else answer_samples(loaded, samples, batch_size=args.batch_size))
    asked, right, other = Counter(), Counter(), Counter()
    for sample, answer in zip(samples, answers):
        form, candidates = question_form(sample.facts, sample.question)
        said = (answer.split() or [""])[0]
        for row in [form] + ([] if form == "one relation" else [f"{form}, {roles(sample.facts, sample.question)}"]):
            asked[row] += 1
            right[row] += said == sample.target
            other[row] += said != sample.target and said in candidates
    layout = f", compact without {', '.join(sorted(drop))}" if drop else ""
    print(f"{args.model}: qa4 at 0k, {len(samples)} train-split samples (seed {args.seed}){layout}")
    print(f"  {'form':34s} {'asked':>6s} {'right':>7s} {'the other candidate':>20s}")
    for row in sorted(asked, key=lambda r: (r.split(",")[0] != "one relation", r)):
        print(f"  {row:34s} {asked[row]:6d} {100 * right[row] / asked[row]:6.1f}% "
              f"{100 * other[row] / asked[row]:19.1f}%")
    both = asked["direct"] + asked["inverse"]
    if both:
        print(f"  direction needed: {100 * (right['direct'] + right['inverse']) / both:.1f}% right of {both} "
              f"(50% is a coin between the two candidates)")


if __name__ == "__main__":
    main()
