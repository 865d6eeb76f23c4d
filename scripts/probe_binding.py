"""Does a BABILong qa1 model read the name it is asked about? A counterfactual probe.

For each test sample, ask the same story about another person it mentions ("Where is Mary?" becomes "Where is
John?") and compare the two greedy first answer tokens. A model that binds people to places changes its answer
whenever the two people are in different places; a model that answers from the story alone (the last room
mentioned, the most frequent one) gives the same answer to both questions. Prints the share of changed answers,
the accuracy on the original questions and on the swapped ones, and the share of pairs whose true answers differ;
then the accuracy by how many facts were stated after the person's last move (0: the last fact is about them,
where "the last room mentioned" is right) and what the wrong answers were (the last room, the one before it).

    python scripts/probe_binding.py runs/babilong-tiny/ckpt-000680 [--length 0k] [--n 200] [--seed 0]
        [--split train] [--drop-words went,moved,journeyed,travelled,back,to,the] [--window 128,512]

The samples are the test split's (the seed `lm2 eval babilong` uses by default); nothing here trains. For choices
made while training (which stage, which run) use `--split train` with a seed of your own, so the test stays unseen.
`--drop-words` asks on compacted statements ("Mary kitchen."), as a curriculum stage with drop_words trains; each
statement is replaced where it stands, so the rest of the context is the same. `--window` adds the accuracy by how
many tokens back the answer's fact lies (`scripts/fact_distance.py`'s bands): on compacted statements at 1k and
beyond, whether a memory carries a binding past the attention window in the layout it was first trained on.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from lm2.data.babi import BabiSample
from lm2.data.babilong import build_samples, drop_fact_words, finetune_example, qa1_places
from lm2.data.tokenizers import token_counter
from lm2.eval.babilong_scoring import band_names, fact_distance, split_by_distance
from lm2.eval.common import load_model


def compacted(sample, words: list[str]):
    """``sample`` with each statement compacted in place in its context (``drop_fact_words``)."""
    facts = drop_fact_words(BabiSample(sample.task, list(sample.facts), sample.question, sample.target,
                                       list(sample.supporting)), words).facts
    context, cursor = sample.context, 0
    for full, short in zip(sample.facts, facts):
        at = context.index(full, cursor)
        context, cursor = context[:at] + short + context[at + len(full):], at + len(short)
    return dataclasses.replace(sample, context=context, facts=facts, n_tokens=token_counter(None)([context])[0])


def first_answer_token(model, tokenizer, sample) -> str:
    """The greedy first token after the answer marker, decoded and stripped."""
    ids, labels = finetune_example(sample, tokenizer)
    start = next(i for i, label in enumerate(labels) if label != -100)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids[:start]])).logits[0, -1]
    return tokenizer.decode([int(logits.argmax())]).strip()


def probe(model, tokenizer, samples, answers: list[str]) -> dict[str, float]:
    """The counterfactual probe; ``answers`` are the first answer tokens of ``samples`` as asked."""
    changed = right = right_swapped = differ = n = 0
    for sample, a in zip(samples, answers):
        person = sample.question.split()[-1].rstrip("?")
        places = qa1_places(sample.facts)
        others = sorted(set(places) - {person})
        if not others:  # a story about one person has no other question to ask
            continue
        other = others[0]
        swapped = dataclasses.replace(sample, question=f"Where is {other}?", target=places[other][0])
        b = first_answer_token(model, tokenizer, swapped)
        n += 1
        changed += a != b
        right += a == sample.target
        right_swapped += b == swapped.target
        differ += sample.target != swapped.target
    return {"pairs": n, "answer_changed": changed / n, "accuracy": right / n, "accuracy_swapped": right_swapped / n,
            "targets_differ": differ / n}


def by_distance(samples, answers: list[str]) -> tuple[dict[int, list[int]], dict[str, int]]:
    """Accuracy by facts stated after the person's last move ({distance: [right, asked]}, 4 = four or more) and a
    count of the answers: right, the last room mentioned, the room before it, another room of the story, other."""
    table: dict[int, list[int]] = {}
    kinds = {"right": 0, "last room": 0, "room before": 0, "other room of the story": 0, "other": 0}
    for sample, a in zip(samples, answers):
        person = sample.question.split()[-1].rstrip("?")
        rooms = [fact.rstrip(".").split()[-1] for fact in sample.facts]
        moved = qa1_places(sample.facts)[person][1]
        row = table.setdefault(min(4, len(sample.facts) - 1 - moved), [0, 0])
        row[0] += a == sample.target
        row[1] += 1
        if a == sample.target:
            kinds["right"] += 1
        elif a == rooms[-1]:
            kinds["last room"] += 1
        elif len(rooms) > 1 and a == rooms[-2]:
            kinds["room before"] += 1
        else:
            kinds["other room of the story" if a in rooms else "other"] += 1
    return dict(sorted(table.items())), kinds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint folder trained on BABILong qa1")
    parser.add_argument("--length", default="0k")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples (0: the test seed of lm2 eval)")
    parser.add_argument("--split", choices=("test", "train"), default="test")
    parser.add_argument("--drop-words", default="", help="comma-separated words removed from every statement")
    parser.add_argument("--window", default="", help="comma-separated token distances: accuracy by how far back "
                        "the answer's fact lies, split at these edges (e.g. 128,512)")
    args = parser.parse_args(argv)
    loaded = load_model(args.model)
    samples = build_samples("qa1", args.length, args.n, split=args.split, seed=args.seed)
    if args.drop_words:  # the same questions and contexts, the statements compacted
        samples = [compacted(s, args.drop_words.split(",")) for s in samples]
    answers = [first_answer_token(loaded.model, loaded.tokenizer, s) for s in samples]  # each sample asked once
    r = probe(loaded.model, loaded.tokenizer, samples, answers)
    print(f"{r['pairs']} pairs ({args.length}, {args.split} seed {args.seed}): the answer changes with the person "
          f"asked about in {100 * r['answer_changed']:.1f}% (true answers differ in {100 * r['targets_differ']:.1f}%); "
          f"accuracy {100 * r['accuracy']:.1f}% asked as written, {100 * r['accuracy_swapped']:.1f}% swapped")
    table, kinds = by_distance(samples, answers)
    print("accuracy by facts since the person's last move: " + ", ".join(
        f"{k}{'+' if k == 4 else ''}: {100 * right / asked:.0f}% of {asked}" for k, (right, asked) in table.items()))
    print("answers: " + ", ".join(f"{name} {count}" for name, count in kinds.items()))
    if args.window:
        edges = [int(e) for e in args.window.split(",")]
        groups = split_by_distance([fact_distance(s, loaded.tokenizer) for s in samples], edges)
        print("accuracy by tokens from the answer's fact to the question: " + ", ".join(
            f"{band}: {100 * sum(answers[i] == samples[i].target for i in group) / len(group):.0f}% of {len(group)}"
            if group else f"{band}: none" for band, group in zip(band_names(edges), groups)))


if __name__ == "__main__":
    main()
