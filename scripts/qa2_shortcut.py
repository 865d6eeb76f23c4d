"""How often a BABILong model answers with the last room its context mentions, and how often that is right.

For a qa2 model stuck near chance this tells a shortcut (answer the most recent room) from noise: bAbI's qa2
answer is the last room mentioned in about a third of the questions. Samples come from the train split with a seed
of their own (the test split stays unseen), at 0k:

    python scripts/qa2_shortcut.py runs/qa2/ckpt-000800 [--task qa2] [--n 200] [--seed 4242] [--steps]

For qa2 it counts a second one-hop shortcut too: the room mentioned last before the object's last statement (right
when whoever took or dropped the object has not moved since).

--steps reads the room from the second word of the answer, for a model trained with data.answer_steps (its answers
name a person first: "Mary kitchen"). --either reads it from the last word, for a model trained with both forms
(a curriculum stage's step_share), and counts the answers that name a person first.
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from lm2.data import babilong as bl
from lm2.eval.babilong import answer_samples
from lm2.eval.common import load_model


def room_said(answer: str, form: str = "room") -> str:
    """The room an answer names: the answer itself ("room"), its second word ("steps": "Mary kitchen"), or its last
    word ("either": a model trained with both forms); "" for an empty answer."""
    words = answer.split()
    words = words[1:2] if form == "steps" else words[-1:] if form == "either" else words[:1]
    return words[0] if words else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint folder")
    parser.add_argument("--task", default="qa2", choices=["qa2", "qa3"])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=4242, help="train-split seed of the samples")
    parser.add_argument("--batch-size", type=int, default=20)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--steps", action="store_true", help="answers name a person before the room (answer_steps)")
    form.add_argument("--either", action="store_true", help="answers may name a person before the room (step_share): "
                      "the room is the last word")
    args = parser.parse_args()
    from qa2_hops import last_room, room_before_object  # scripts/ is on the path when this file runs as a script

    torch.set_num_threads(1)
    loaded = load_model(args.model)
    samples = bl.build_samples(args.task, "0k", args.n, split="train", seed=args.seed)
    answers = answer_samples(loaded, samples, batch_size=args.batch_size)
    count = Counter()
    for sample, answer in zip(samples, answers):
        said = room_said(answer, "steps" if args.steps else "either" if args.either else "room")
        count["named a person first"] += args.either and len(answer.split()) > 1
        last = last_room(sample.facts)
        count["right"] += said == sample.target
        count["answered the last room"] += said == last
        count["the last room is right"] += sample.target == last
        count["wrong, the last room"] += said == last != sample.target
        if args.task == "qa2":
            before = room_before_object(sample.facts, sample.question.rstrip("?").split()[-1])
            count["answered the room before the object"] += said == before
            count["the room before the object is right"] += sample.target == before
            if sample.target not in (last, before):  # only two lookups find the answer
                count["neither shortcut is right"] += 1
                count["right where neither shortcut is"] += said == sample.target
    n = len(samples)
    print(f"{args.model}: {args.task} at 0k, {n} train-split samples (seed {args.seed})")
    keys = ["right", "answered the last room", "wrong, the last room", "the last room is right"]
    keys += ["named a person first"] if args.either else []
    if args.task == "qa2":
        keys += ["answered the room before the object", "the room before the object is right"]
    for key in keys:
        print(f"  {key:36s} {100 * count[key] / n:5.1f}%")
    hard = count["neither shortcut is right"]
    if hard:
        share = 100 * count["right where neither shortcut is"] / hard
        print(f"  {'right where neither shortcut is':36s} {share:5.1f}%  of {hard}")


if __name__ == "__main__":
    main()
