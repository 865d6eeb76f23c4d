"""Does a model answer BABILong as evaluated, or only as trained? Teacher-forced accuracy in both layouts.

A training story (``data.supervise: story``) asks its questions right after the statement they last use, then the
background goes on; an evaluation prompt asks its one question after the whole context, background included. A
model can answer the first and not the second. For a checkpoint, this prints the share of answers whose first
token is the model's top prediction (teacher forcing: one forward pass per sample, no generation), over:

* evaluation prompts (``lm2 eval babilong``'s layout) of the train split, at --seed (not the test's);
* training stories cut at one question point drawn per story (``one_point: random``), the point's questions right
  after its last statement (first question / all questions);
* the same stories with the questions after the whole context (``ask_at_end``).

    python scripts/layout_gap.py runs/qa1-demo/ckpt-001150 --length 1k --n 40
"""

from __future__ import annotations

import argparse
import random

import torch

from lm2.data.babi import generate_stories
from lm2.data.babilong import build_samples, finetune_example, story_finetune_example
from lm2.eval.common import load_model


def first_answer_hits(model, ids: list[int], labels: list[int]) -> list[bool]:
    """For each answer (a run of supervised labels after an unsupervised token), whether the model's top prediction
    at the position before it is the answer's first token."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return [int(logits[i - 1].argmax()) == ids[i] for i in range(1, len(ids))
            if labels[i] != -100 and labels[i - 1] == -100]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a checkpoint folder")
    parser.add_argument("--length", default="1k")
    parser.add_argument("--n", type=int, default=40, help="samples and stories")
    parser.add_argument("--seed", type=int, default=777, help="train-split seed of the evaluation prompts")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    prompts = []
    for sample in build_samples("qa1", args.length, args.n, split="train", seed=args.seed):
        ids, labels = finetune_example(sample, tokenizer)
        prompts += first_answer_hits(model, list(ids), list(labels))
    layouts = {}
    for at_end in (False, True):
        first, every = [], []
        for i in range(args.n):
            rng = random.Random(f"layout_gap/{args.seed}/{i}")
            story = generate_stories("qa1", 1, split="train", seed=rng.randrange(2**31))[0]
            ids, labels = story_finetune_example(story, args.length, "train", rng, tokenizer, ask_everyone=True,
                                                 one_point="random", ask_at_end=at_end)
            hits = first_answer_hits(model, ids, labels)
            first.append(hits[0])
            every += hits
        layouts[at_end] = (first, every)
    print(f"{args.model}: qa1 at {args.length}, first answer token right (teacher forcing), train split")
    print("| layout | first question | every question |")
    print("|---|---:|---:|")
    print(f"| evaluation prompt (seed {args.seed}) | {sum(prompts)} / {len(prompts)} | |")
    for at_end, name in ((False, "training story, asked after the point's last statement"),
                         (True, "training story, asked after the whole context (ask_at_end)")):
        first, every = layouts[at_end]
        print(f"| {name} | {sum(first)} / {len(first)} | {sum(every)} / {len(every)} |")


if __name__ == "__main__":
    main()
