"""qa2's two hops, asked on their own: which one a tiny model fails to learn.

A qa2 answer ("Where is the milk?") chains two lookups: who has the milk ("Mary got the milk."), then where that
person is ("Mary went to the kitchen."). This script trains with both hops asked as extra questions inside qa2
stories, and probes a checkpoint on each hop and on qa2 itself (train-split stories with a seed of their own; the
test split stays unseen):

    python scripts/qa2_hops.py train configs/babilong-qa1-tiny.yaml --data.babi_tasks '[qa2]' \
        --data.ask_everyone true ...      # lm2 train, every question point also asking "Where is P?" for every
                                          # placed person and "Who has the O?" for every held object
    python scripts/qa2_hops.py train --ask holder ...   # "Who has the O?" alone
    python scripts/qa2_hops.py train --ask every-holder ...   # every question and "Who has the O?", no "Where is P?"
    python scripts/qa2_hops.py train --ask not-last-room ...   # every question but those whose answer is the last
                                          # room the statements mention (the shortcut never pays)
    python scripts/qa2_hops.py train --ask not-shortcut ...    # nor the room mentioned last before the object's
                                          # last statement (neither one-hop shortcut pays)
    python scripts/qa2_hops.py train --verb ... --data.answer_steps '[qa2]'   # "Mary got kitchen" / "Mary dropped
                                          # kitchen": the kind of the object's last statement written too
    python scripts/qa2_hops.py probe runs/qa2/ckpt-000800 [--n 200] [--seed 4242]
    python scripts/qa2_hops.py probe --steps runs/qa2-steps/ckpt-000800   # a model trained with
                                          # data.answer_steps: [qa2] ("Mary kitchen"): the label rule, and the person
    python scripts/qa2_hops.py probe --steps --task qa3 runs/qa3-steps/ckpt-000800   # qa3 with its step (the
                                          # carrier, "John bedroom"): the label rule, and the carrier

The hop questions are a probe's, not bAbI's: they are asked only in training runs made with `train`, and `probe`
asks them of any qa2 checkpoint (a model never trained on them can still answer in their form only by chance).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import random
import re
import sys

import torch

from lm2.data import babilong as bl
from lm2.data.babi import BabiSample
from lm2.data.babi.common import DROP_VERBS, ROOMS
from lm2.data.babi.questions import every_question, replay, with_step


def hop_questions(facts: list[str]) -> list[tuple[str, str]]:
    """("Where is P?", room) for every person the facts place and ("Who has the O?", holder) for every held
    object."""
    state = replay(facts)
    return ([(f"Where is {person}?", room) for person, (room, _) in sorted(state.place.items())]
            + [(f"Who has the {obj}?", person) for obj, (person, _) in sorted(state.holder.items())])


SHORTCUT_ASKS = ("not-last-room", "not-shortcut")  # every question but those a one-hop shortcut answers
ASK = ("both", "holder", "every-holder") + SHORTCUT_ASKS


def last_room(facts: list[str]) -> str | None:
    """The room the statements mention last (qa2's shortcut answer; scripts/qa2_shortcut.py counts it)."""
    rooms = [word for word in re.findall(r"\w+", " ".join(facts)) if word in ROOMS]
    return rooms[-1] if rooms else None


def room_before_object(facts: list[str], obj: str) -> str | None:
    """The room mentioned last before the object's last statement: the second one-hop shortcut (right when the
    object's taker or dropper has not moved since)."""
    last = max((i for i, fact in enumerate(facts) if re.search(rf"\b{obj}\b", fact)), default=0)
    return last_room(facts[:last])


def pays_a_shortcut(q: BabiSample, ask: str) -> bool:
    """Whether a one-hop shortcut answers q: the last room mentioned (not-last-room), or that or the room
    mentioned last before the object's last statement (not-shortcut)."""
    obj = q.question.rstrip("?").split()[-1]
    return q.answer == last_room(q.facts) or (ask == "not-shortcut" and q.answer == room_before_object(q.facts, obj))


def with_verb(sample: BabiSample) -> BabiSample:
    """with_step's qa2 answer with the kind of the object's last statement between the person and the room:
    "Mary got kitchen" or "Mary dropped kitchen" (train --verb)."""
    stepped = with_step(sample)
    if sample.task != "qa2":
        return stepped
    fact = sample.facts[sample.supporting[0]]
    dropped = any(fact.split(" ", 1)[1].startswith(verb + " ") for verb in DROP_VERBS)
    person, room = stepped.answer.split()
    return dataclasses.replace(stepped, answer=f"{person} {'dropped' if dropped else 'got'} {room}")


def with_hops(sample: BabiSample, rng: random.Random, ask: str = "both") -> list[BabiSample]:
    """every_question's questions and both hops (both), "Who has the O?" alone (holder), every_question's and
    "Who has the O?" (every-holder), or every_question's less those a one-hop shortcut answers (not-last-room,
    not-shortcut: pays_a_shortcut; a point where a shortcut answers all of them asks none)."""
    if ask in SHORTCUT_ASKS:
        asked = [q for q in every_question(sample) if not pays_a_shortcut(q, ask)]
        rng.shuffle(asked)
        return asked
    hops = hop_questions(sample.facts) if sample.task == "qa2" else []
    if ask != "both":
        hops = [(q, a) for q, a in hops if q.startswith("Who has")]
    if ask == "holder":  # a point where nobody holds anything asks its own question (no story is left without one)
        asked = [BabiSample("qa2", sample.facts, q, a, []) for q, a in hops] or [sample]
    else:
        asked = every_question(sample) + [BabiSample("qa2", sample.facts, q, a, []) for q, a in hops]
    rng.shuffle(asked)
    return asked


def _some_question(ask, build, story, *args, **kwargs):
    """build(story, ...), with a story whose every question was left out refused as one none of whose questions
    fits, which the training stream draws again."""
    if not any(with_hops(q, random.Random(0), ask) for q in bl.story_samples(story)):
        raise bl.NoQuestionFits(f"a one-hop shortcut ({ask}) answers every question of this story")
    return build(story, *args, **kwargs)


def probe(args: argparse.Namespace) -> None:
    from probe_binding import compacted  # scripts/ is on the path when this file runs as a script

    from lm2.eval.babilong import answer_samples
    from lm2.eval.common import load_model

    torch.set_num_threads(1)
    loaded = load_model(args.model)
    if args.task == "qa3":  # qa3 answered with its step (the carrier): the label rule and the person only
        print(f"{args.model}: qa3 at 0k, train-split stories (seed {args.seed})")
        steps_probe(loaded, bl.build_samples("qa3", "0k", args.n, split="train", seed=args.seed), "qa3")
        return
    groups: dict[str, list] = {"qa2 (both hops)": [], "who has the O": [], "where is the holder": []}
    drop = args.drop_words.split(",") if args.drop_words else []
    for sample in bl.build_samples("qa2", "0k", args.n, split="train", seed=args.seed):
        state = replay(sample.facts)
        if drop:  # the statements as a compact training stage lays them out
            sample = compacted(sample, drop)
        groups["qa2 (both hops)"].append(sample)
        obj = sample.question.rstrip("?").split()[-1]
        if obj in state.holder:  # the object is held: ask both hops of this question
            person = state.holder[obj][0]
            groups["who has the O"].append(dataclasses.replace(sample, question=f"Who has the {obj}?", target=person))
            if person in state.place:
                groups["where is the holder"].append(
                    dataclasses.replace(sample, question=f"Where is {person}?", target=state.place[person][0]))
    print(f"{args.model}: qa2 at 0k, train-split stories (seed {args.seed})"
          + (f", statements without {', '.join(drop)}" if drop else ""))
    if args.steps:  # a model trained with data.answer_steps writes the person first: "Mary kitchen"
        steps_probe(loaded, groups["qa2 (both hops)"])
        return
    for name, group in groups.items():
        answers = answer_samples(loaded, group)
        right = sum(a.split()[:1] == [s.target] for a, s in zip(answers, group))
        print(f"  {name:20s} {100 * right / len(group):5.1f}%  of {len(group)}")


def steps_probe(loaded, samples: list, task: str = "qa2") -> None:
    """qa2 (or qa3) answered with its step: BABILong's label rule, the person written first, and for qa2 the label
    rule split by where the object is: held, dropped where its dropper still is, or dropped by someone who has
    moved on since (with how often the answer names the dropper's room now instead)."""
    from lm2.eval.babilong import answer_samples
    from lm2.eval.babilong_scoring import label_score

    answers = answer_samples(loaded, samples, max_new_tokens=8)
    rows: dict[str, list[bool]] = {f"{task}, BABILong's label rule": [], "the written person right": [],
                                   "  held": [], "  dropped, the dropper still there": [],
                                   "  dropped, the dropper moved on": [], "    ... answered the dropper's room now": []}
    for sample, answer in zip(samples, answers):
        right = label_score(answer, sample.target, sample.question, task)
        stepped = with_step(BabiSample(task, sample.facts, sample.question, sample.target, sample.supporting))
        person = stepped.answer.split()[0]
        rows[f"{task}, BABILong's label rule"].append(right)
        rows["the written person right"].append(answer.split()[:1] == [person])
        if task != "qa2":
            continue
        state = replay(sample.facts)
        obj = sample.question.rstrip("?").split()[-1]
        if obj in state.holder:
            rows["  held"].append(right)
            continue
        now = state.place[person][0]
        if now == sample.target:
            rows["  dropped, the dropper still there"].append(right)
        else:
            rows["  dropped, the dropper moved on"].append(right)
            rows["    ... answered the dropper's room now"].append(label_score(answer, now, sample.question, "qa2"))
    for name, hits in rows.items():
        if not hits:  # qa3: no split by where the object is
            continue
        print(f"  {name:40s} {100 * sum(hits) / len(hits):5.1f}%  of {len(hits)}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        from lm2.cli import main as lm2_main

        args, ask = sys.argv[1:], "both"
        if args[1:2] == ["--verb"]:  # data.answer_steps writes got / dropped too; no hop questions
            bl.with_step = with_verb
            del args[1]
            raise SystemExit(lm2_main(args))
        if args[1:2] == ["--ask"]:
            if args[2:3] == [] or args[2] not in ASK:
                raise SystemExit(f"qa2_hops.py train --ask takes one of {', '.join(ASK)} (default both)")
            ask = args[2]
            del args[1:3]
        # data.ask_everyone now also asks the hops (--ask: which; see with_hops)
        bl._everyone = functools.partial(with_hops, ask=ask)
        if ask in SHORTCUT_ASKS:
            # a story left with no question is drawn again, as one with none that fits
            from lm2.train import data as train_data

            build = train_data.story_finetune_example
            train_data.story_finetune_example = functools.partial(_some_question, ask, build)
        raise SystemExit(lm2_main(args))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="lm2 train with the hops asked (the rest of the line goes to lm2 train)")
    p = sub.add_parser("probe", help="accuracy on qa2 and on each hop")
    p.add_argument("model")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=4242, help="train-split seed of the stories")
    p.add_argument("--drop-words", default="", help="comma-separated words dropped from the statements, as a compact "
                   "curriculum stage drops them (the questions keep the prompt's layout)")
    p.add_argument("--steps", action="store_true", help="the model was trained with data.answer_steps: [qa2]: score "
                   "qa2 by BABILong's label rule and check the person it writes first")
    p.add_argument("--task", choices=("qa2", "qa3"), default="qa2", help="qa3: a model trained with "
                   "data.answer_steps: [qa3]; with --steps, the label rule and the carrier it writes first")
    args = parser.parse_args()
    if args.task == "qa3" and not args.steps:
        parser.error("--task qa3 scores a model that writes its step: add --steps")
    if args.steps and args.drop_words:
        parser.error("--steps reads the full statements; leave out --drop-words")
    probe(args)


if __name__ == "__main__":
    main()
