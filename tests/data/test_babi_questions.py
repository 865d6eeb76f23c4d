"""every_question: every question a qa1-qa5 story point answers, against the generator's own questions and the
independent checker (babi_check), and as data.ask_everyone lays it out for training."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from babi_check import check_story

from lm2.data import babilong as bl
from lm2.data.babi import BabiLine, BabiSample, Story, generate_stories, story_samples
from lm2.data.babi.questions import every_question, with_step
from lm2.data.tokenizers import gpt2_tokenizer

TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")


def _as_story(task: str, facts: list[str], asked: list[BabiSample]) -> Story:
    """The statements, then every asked question, as one bAbI story (supporting fact indices -> line ids)."""
    lines = [BabiLine(i + 1, fact) for i, fact in enumerate(facts)]
    lines += [BabiLine(len(lines) + 1 + k, q.question, q.answer, [i + 1 for i in q.supporting])
              for k, q in enumerate(asked)]
    return Story(task, lines)


@pytest.mark.parametrize("task", TASKS)
def test_every_question_holds_the_generators_own_and_each_checks_out(task):
    """At each of 150 stories' question points: the generator's question, answer and supporting facts are among
    every_question's, and each of them is re-derived from the text by the independent checker."""
    counts = Counter()
    for story in generate_stories(task, 150, split="train", seed=3):
        for sample in story_samples(story):
            asked = every_question(sample)
            own = (sample.question, sample.answer, sorted(sample.supporting))
            assert own in [(q.question, q.answer, sorted(q.supporting)) for q in asked], (own, asked)
            assert len({q.question for q in asked}) == len(asked)  # nothing asked twice
            assert all(q.facts == sample.facts and q.task == task for q in asked)
            assert check_story(_as_story(task, sample.facts, asked)) == []
            counts[len(asked)] += 1
    mean = sum(n * c for n, c in counts.items()) / sum(counts.values())
    # more than the one question bAbI asks: qa4 always four, qa5 always five, qa1-qa3 more on average
    expected = {"qa1": (2.0, 4.0), "qa2": (1.3, 3.0), "qa3": (1.05, 3.0), "qa4": (4.0, 4.0), "qa5": (5.0, 5.0)}[task]
    assert expected[0] <= mean <= expected[1], (task, mean, counts)


def test_every_question_follows_the_statements_by_hand():
    facts = ["Mary went to the kitchen.", "Mary got the milk there.", "John moved to the garden.",
             "Mary travelled to the office.", "Mary dropped the milk.", "John picked up the apple there.",
             "Sandra took the football."]
    sample = BabiSample("qa2", facts, "Where is the milk?", "office", [4, 3])
    assert {(q.question, q.answer, tuple(q.supporting)) for q in every_question(sample)} == {
        ("Where is the milk?", "office", (4, 3)), ("Where is the apple?", "garden", (5, 2))}  # Sandra: never placed
    before = every_question(BabiSample("qa3", facts, "", "", []))
    assert [(q.question, q.answer, q.supporting) for q in before] == [
        ("Where was the milk before the office?", "kitchen", [3, 1, 0])]
    relations = ["The kitchen is north of the garden.", "The garden is east of the office."]
    qa4 = {(q.question, q.answer) for q in every_question(BabiSample("qa4", relations, "", "", []))}
    assert qa4 == {("What is north of the garden?", "kitchen"), ("What is the kitchen north of?", "garden"),
                   ("What is west of the garden?", "office"), ("What is the office west of?", "garden")}
    gives = ["Fred went to the park.", "Fred handed the apple to Bill.", "Bill passed the apple to Jeff."]
    qa5 = {(q.question, q.answer) for q in every_question(BabiSample("qa5", gives, "", "", []))}
    assert qa5 == {("What did Bill give to Jeff?", "apple"), ("Who gave the apple?", "Bill"),
                   ("Who gave the apple to Jeff?", "Bill"), ("Who received the apple?", "Jeff"),
                   ("Who did Bill give the apple to?", "Jeff")}


def test_every_question_refuses_what_it_cannot_read():
    with pytest.raises(ValueError, match="not qa6"):
        every_question(BabiSample("qa6", ["Mary went to the kitchen."], "Is Mary in the kitchen?", "yes", [0]))
    with pytest.raises(ValueError, match="not a qa1-qa5 statement"):
        every_question(BabiSample("qa2", ["Mary is either in the kitchen or the park."], "", "", []))


@pytest.mark.parametrize("task", ["qa2", "qa5"])
def test_ask_everyone_supervises_every_question_after_its_point(task):
    """data.ask_everyone beyond qa1: each question point is followed by every_question's questions (in some order),
    each answer and its eos supervised, with the words of a compact stage dropped from the statements only."""
    tok = gpt2_tokenizer()
    story = generate_stories(task, 1, split="train", seed=11)[0]
    points = [s for s in story_samples(story) if bl.fits(s, "0k")]
    drop = ["went", "to", "the"]
    ids, labels = bl.story_finetune_example(story, "0k", "train", random.Random(2), tok, ask_everyone=True,
                                            drop_words=drop)
    text = tok.decode(ids).replace(tok.eos_token, " ")
    blocks = text.split(f"\n{bl.QUESTION_PREFIX} ")[1:]
    asked = [(b.split("?")[0] + "?", b.split(f"\n{bl.ANSWER_MARKER} ")[1].split()[0]) for b in blocks]
    cursor = 0
    for point in points:
        expected = {(q.question, q.answer) for q in every_question(point)}
        assert set(asked[cursor: cursor + len(expected)]) == expected
        cursor += len(expected)
    assert cursor == len(asked) > len(points)
    supervised = [t for t, lab in zip(ids, labels) if lab != -100]
    assert supervised.count(tok.eos_token_id) == len(asked)
    statements = text.split(f"\n{bl.QUESTION_PREFIX} ")[0]
    assert not {" went ", " to ", " the "} & {f" {w} " for w in statements.split()}  # dropped from the statements
    assert any(" the " in question for question, _ in asked)  # kept in the questions (compared whole above)


@pytest.mark.parametrize("task", ["qa2", "qa3"])
def test_with_step_names_the_person_of_the_first_hop(task):
    """data.answer_steps: over 150 stories, the generator's own question keeps its room, written after a person
    found here another way than with_step finds it: in qa2 the subject of the last statement naming the object
    (who got or dropped it); in qa3 the one who took the object and then moved into the question's room."""
    checked = 0
    for story in generate_stories(task, 150, split="train", seed=5):
        for sample in story_samples(story):
            stepped = with_step(sample)
            person, room = stepped.answer.split()
            assert room == sample.answer and stepped.question == sample.question
            assert stepped.facts == sample.facts and stepped.supporting == sample.supporting
            obj = sample.question.split(" the ")[1].split()[0].rstrip("?")
            if task == "qa2":
                last = [f for f in sample.facts if f" the {obj}" in f][-1]
                assert last.split()[0] == person, (last, stepped)
            else:
                went_to = sample.question.rstrip("?").split()[-1]
                said = [f"{person} {verb} the {obj}" for verb in ("got", "took", "picked up", "grabbed")]
                took = [i for i, f in enumerate(sample.facts) if any(f.startswith(s) for s in said)]
                moved = [i for i, f in enumerate(sample.facts)
                         if f.startswith(person + " ") and f.rstrip(".").split()[-1] == went_to]
                assert any(t < m and not any(f.startswith(person) and f" the {obj}" in f
                                             for f in sample.facts[t + 1: m])
                           for t in took for m in moved), (sample.facts, stepped)  # carried it in
            checked += 1
    assert checked > 150


def test_with_step_by_hand_and_its_refusals():
    facts = ["Mary went to the kitchen.", "Mary got the milk there.", "Mary travelled to the office.",
             "Mary dropped the milk.", "Mary moved to the garden."]
    assert with_step(BabiSample("qa2", facts, "Where is the milk?", "office", [3, 2])).answer == "Mary office"
    qa3 = BabiSample("qa3", facts, "Where was the milk before the office?", "kitchen", [2, 1, 0])
    assert with_step(qa3).answer == "Mary kitchen"
    with pytest.raises(ValueError, match="qa2, qa3, not qa1"):
        with_step(BabiSample("qa1", facts, "Where is Mary?", "garden", [4]))
    with pytest.raises(ValueError, match="no supporting facts"):
        with_step(BabiSample("qa2", facts, "Where is the milk?", "office", []))
    with pytest.raises(ValueError, match="is a move"):  # qa2's first supporting fact names the object
        with_step(BabiSample("qa2", facts, "Where is the milk?", "office", [2, 3]))


def test_answer_steps_write_the_person_before_the_room_of_qa2_only():
    """A qa2 story laid out with answer_steps: each answer is "<person> <room>", every token of it and the eos
    supervised; the same story without it answers the room alone; other tasks are left as they are."""
    tok = gpt2_tokenizer()
    story = generate_stories("qa2", 1, split="train", seed=11)[0]
    plain = bl.story_finetune_example(story, "0k", "train", random.Random(2), tok)
    ids, labels = bl.story_finetune_example(story, "0k", "train", random.Random(2), tok, answer_steps=["qa2"])
    answers = [a.split(tok.eos_token)[0].split() for a in tok.decode(ids).split(f"{bl.ANSWER_MARKER} ")[1:]]
    points = [s for s in story_samples(story) if bl.fits(s, "0k")]
    assert answers == [with_step(p).answer.split() for p in points] and all(len(a) == 2 for a in answers)
    supervised = tok.decode([t for t, lab in zip(ids, labels) if lab != -100]).split(tok.eos_token)[:-1]
    assert [a.split() for a in supervised] == answers
    plain_answers = [a.split(tok.eos_token)[0].split() for a in tok.decode(plain[0]).split(f"{bl.ANSWER_MARKER} ")[1:]]
    assert plain_answers == [a[1:] for a in answers]
    qa1 = generate_stories("qa1", 1, split="train", seed=11)[0]
    assert bl.story_finetune_example(qa1, "0k", "train", random.Random(2), tok, answer_steps=["qa2"]) == \
        bl.story_finetune_example(qa1, "0k", "train", random.Random(2), tok)


def test_qa2_shortcut_script_reads_the_room_in_each_answer_form():
    """scripts/qa2_shortcut.py: the room is the answer (room alone), its second word (--steps, "Mary kitchen") or its
    last word (--either, a model trained with both forms, whichever it writes)."""
    from helpers import load_script

    room_said = load_script("qa2_shortcut").room_said
    assert [room_said("kitchen"), room_said("Mary kitchen", "steps"), room_said("Mary", "steps")] == \
        ["kitchen", "kitchen", ""]
    assert [room_said("kitchen", "either"), room_said("Mary kitchen", "either"), room_said("", "either")] == \
        ["kitchen", "kitchen", ""]


def test_qa2_hops_script_asks_each_hop_with_the_facts_answer():
    """scripts/qa2_hops.py: "Where is P?" for each placed person and "Who has the O?" for each held object (a dropped
    or never-taken one is not asked); --ask holder keeps "Who has the O?" alone, and a point with nothing held asks
    its own question."""
    from helpers import load_script

    hops = load_script("qa2_hops")
    facts = ["Mary went to the kitchen.", "Mary got the milk there.", "John took the apple.", "John dropped the apple.",
             "Sandra grabbed the football.", "Sandra moved to the office."]
    assert hops.hop_questions(facts) == [("Where is Mary?", "kitchen"), ("Where is Sandra?", "office"),
                                         ("Who has the football?", "Sandra"), ("Who has the milk?", "Mary")]
    sample = BabiSample("qa2", facts, "Where is the milk?", "kitchen", [1, 0])
    both = hops.with_hops(sample, random.Random(0))
    assert {(q.question, q.answer) for q in both} == (
        {(q.question, q.answer) for q in every_question(sample)} | set(hops.hop_questions(facts)))
    holder = hops.with_hops(sample, random.Random(0), ask="holder")
    assert sorted((q.question, q.answer) for q in holder) == [("Who has the football?", "Sandra"),
                                                            ("Who has the milk?", "Mary")]
    nothing_held = BabiSample("qa2", facts[:4] + ["Mary left the milk."], "Where is the milk?", "kitchen", [4, 0])
    assert hops.with_hops(nothing_held, random.Random(0), ask="holder") == [nothing_held]
    every_holder = hops.with_hops(sample, random.Random(0), ask="every-holder")
    assert {(q.question, q.answer) for q in every_holder} == (
        {(q.question, q.answer) for q in every_question(sample)} | {("Who has the football?", "Sandra"),
                                                                     ("Who has the milk?", "Mary")})
    # --ask not-last-room: every question but those whose answer is the room the statements mention last (office)
    assert hops.last_room(facts) == "office"
    not_last = hops.with_hops(sample, random.Random(0), ask="not-last-room")
    assert {(q.question, q.answer) for q in not_last} == (
        {(q.question, q.answer) for q in every_question(sample)} - {("Where is the football?", "office")})
    assert ("Where is the football?", "office") in {(q.question, q.answer) for q in every_question(sample)}
    only_last = BabiSample("qa2", facts[4:], "Where is the football?", "office", [1, 0])
    assert hops.with_hops(only_last, random.Random(0), ask="not-last-room") == []
    # --ask not-shortcut: nor those answered by the room mentioned last before the object's last statement
    assert hops.room_before_object(facts, "milk") == "kitchen"
    assert hops.with_hops(sample, random.Random(0), ask="not-shortcut") == []
    moved = BabiSample("qa2", facts[:2] + ["Mary moved to the garden.", "John went to the office."],
                       "Where is the milk?", "garden", [2, 1])
    assert [(q.question, q.answer) for q in hops.with_hops(moved, random.Random(0), ask="not-shortcut")] == [
        ("Where is the milk?", "garden")]
    # a story a shortcut answers throughout is refused as one with no question that fits (the stream draws again)
    stories = generate_stories("qa2", 100, split="train", seed=77)
    left = [any(hops.with_hops(q, random.Random(0), "not-shortcut") for q in story_samples(s)) for s in stories]
    assert 0 < left.count(False) < len(stories)
    built = hops._some_question("not-shortcut", lambda story, *a, **k: (story, a, k), stories[left.index(True)], 1, x=2)
    assert built == (stories[left.index(True)], (1,), {"x": 2})
    with pytest.raises(bl.NoQuestionFits, match="shortcut"):
        hops._some_question("not-shortcut", lambda *a, **k: None, stories[left.index(False)])
    # train --verb: data.answer_steps with the kind of the object's last statement between the person and the room
    dropped = BabiSample("qa2", facts + ["Mary moved to the garden.", "Mary put down the milk."], "Where is the milk?",
                         "garden", [7, 6])
    assert hops.with_verb(dropped).answer == "Mary dropped garden"
    assert hops.with_verb(sample).answer == "Mary got kitchen"


def test_qa4_direction_script_tells_the_question_forms_apart():
    """scripts/qa4_direction.py: "What is the X DIR of?" names a room of one relation (the answer its partner there);
    "What is DIR of the X?" names the shared room, with both other rooms as candidates, "direct" when a statement
    says it in the question's words and "inverse" when it says the opposite way round."""
    from helpers import load_script

    script = load_script("qa4_direction")
    form, roles = script.question_form, script.roles
    facts = ["The bathroom is east of the kitchen.", "The kitchen is east of the hallway."]
    assert form(facts, "What is east of the kitchen?") == ("direct", {"bathroom", "hallway"})
    assert form(facts, "What is west of the kitchen?") == ("inverse", {"bathroom", "hallway"})
    assert form(facts, "What is the hallway west of?") == ("one relation", {"kitchen"})
    assert roles(facts, "What is west of the kitchen?") == "object and subject"
    assert roles(["The garden is west of the office.", "The garden is east of the hall."],
                 "What is east of the garden?") == "subject of both"
    with pytest.raises(ValueError, match="in 2 relations"):
        form(facts, "What is the kitchen west of?")
    with pytest.raises(ValueError, match="not a qa4 question"):
        form(facts, "Where is the kitchen?")
    # on generated stories: every question's answer is one of its candidates, and a one-relation question's only one
    counts = Counter()
    for story in generate_stories("qa4", 50, split="train", seed=3):
        for sample in story_samples(story):
            for asked in every_question(sample):
                kind, candidates = form(asked.facts, asked.question)
                counts[kind] += 1
                assert asked.answer in candidates
                assert (kind == "one relation") == (candidates == {asked.answer})
    assert counts["one relation"] == counts["direct"] + counts["inverse"] and counts["direct"] and counts["inverse"]
