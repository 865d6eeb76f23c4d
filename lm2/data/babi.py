"""bAbI tasks qa1-qa10: a seeded generator, and the reader/writer of the bAbI text format.

No bAbI data ships offline, so lm2 makes its own. The generator simulates the same small world as bAbI
(four actors, six rooms, three objects) and follows the project's bAbI spec (BABI_SPEC.md), measured on the
public v1.2 en-10k files: the same sentences and verbs, the same action rules, story sizes, statement mix,
question forms and answer shares, and supporting-fact ids in the same convention. The aim is that a model
trained on these stories scores the same on the real test files as on our own test split.

How a story is made: a hidden world state (where everybody and everything truly is) decides which actions
are possible; every action is narrated, but the starting positions never are, exactly as in bAbI where a
story may open with "Mary got the milk there.". Beside the truth we track what the story has *established*
(which line fixes what), because a question may only ask about something the text already determines, and
its supporting ids are those lines. `lm2.data.babi_check` re-derives every answer from the text alone.

The train/test split is a partition of stories by a hash of their first two statements: the two splits come
from one stream of story attempts, and any two stories (or BABILong samples, which are story prefixes with
at least two facts) that could coincide always land in the same split.

Real bAbI files load with `read_babi`, so everything downstream works on the published data too.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# ----------------------------------------------------------------------------------------------------------
# Public constants
# ----------------------------------------------------------------------------------------------------------

TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5", "qa6", "qa7", "qa8", "qa9", "qa10")

TASK_NAMES = {
    "qa1": "single-supporting-fact",
    "qa2": "two-supporting-facts",
    "qa3": "three-supporting-facts",
    "qa4": "two-arg-relations",
    "qa5": "three-arg-relations",
    "qa6": "yes-no-questions",
    "qa7": "counting",
    "qa8": "lists-sets",
    "qa9": "simple-negation",
    "qa10": "indefinite-knowledge",
}

ROOMS = ("bathroom", "bedroom", "garden", "hallway", "kitchen", "office")
QA10_ROOMS = ("bedroom", "cinema", "kitchen", "office", "park", "school")
OBJECTS = ("apple", "football", "milk")
ACTORS = ("Daniel", "John", "Mary", "Sandra")
QA5_ACTORS = ("Bill", "Fred", "Jeff", "Mary")
QA10_ACTORS = ("Bill", "Fred", "Julie", "Mary")

# The answer label sets BABILong's scorer searches for in a model's output (BABI_SPEC.md, Scoring).
LABELS = {
    "qa1": ROOMS,
    "qa2": ROOMS,
    "qa3": ROOMS,
    "qa4": ROOMS,
    "qa5": ("Bill", "Fred", "Jeff", "Mary", "apple", "football", "milk"),
    "qa6": ("yes", "no"),
    "qa7": ("none", "one", "two", "three"),
    "qa8": ("apple", "football", "milk", "nothing"),
    "qa9": ("yes", "no"),
    "qa10": ("yes", "no", "maybe"),
}

# Each verb of a group is equally likely (measured on en-10k).
MOVE_VERBS = ("went to", "journeyed to", "travelled to", "went back to", "moved to")
TAKE_VERBS = ("got", "took", "picked up", "grabbed")
DROP_VERBS = ("dropped", "left", "discarded", "put down")
GIVE_VERBS = ("gave", "passed", "handed")

COUNT_WORDS = ("none", "one", "two", "three")

SPLITS = ("train", "test")
TEST_FRACTION = 0.1  # share of story space reserved for the test split


# ----------------------------------------------------------------------------------------------------------
# Data types
# ----------------------------------------------------------------------------------------------------------


@dataclass
class BabiLine:
    """One line of a story: a statement, or a question with its answer and supporting line ids."""

    id: int  # 1-based id within the story
    text: str  # statement ("Mary went to the kitchen.") or question ("Where is Mary?")
    answer: str | None = None  # None for statements
    supporting: list[int] = field(default_factory=list)


@dataclass
class Story:
    """A bAbI story: statements interleaved with questions, ids restarting at 1."""

    task: str  # "qa1".."qa10"
    lines: list[BabiLine]


@dataclass
class BabiSample:
    """One question with its context, as BABILong uses it."""

    task: str
    facts: list[str]  # all statements of the story before the question, in order
    question: str  # e.g. "Where is Mary?"
    answer: str
    supporting: list[int]  # indices into `facts` (0-based) of the supporting facts


def check_task(task: str | int) -> str:
    """Normalise a task name ("qa1", "QA1", "1" or 1 -> "qa1"); raise ValueError for anything else."""
    text = str(task).strip().lower()
    if text.startswith("qa"):
        text = text[2:]
    if text.isdigit() and f"qa{int(text)}" in TASKS:
        return f"qa{int(text)}"
    raise ValueError(f"unknown bAbI task {task!r}: lm2 supports {', '.join(TASKS)} (or just the number 1-10)")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'test'")
    return split


def _check_count(n: int, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of {what} must be a non-negative integer, got {n!r}")
    return n


# ----------------------------------------------------------------------------------------------------------
# The world of one story
# ----------------------------------------------------------------------------------------------------------


class _WrongSplit(Exception):
    """Raised as soon as a story's first two statements show that it belongs to the other split."""


class _World:
    """The hidden truth of one story and what the story has established so far.

    Truth: `room` (every actor), `floor` (room of every object nobody holds), `holder`.
    Established (line ids of the statements that fix a fact):
      where[a]     latest statement putting actor a in a definite room (a move, or "a is in the L.")
      latest[a]    latest location statement of any kind about a: ("at" | "not" | "either", rooms, line)
      acquired[o]  the line by which o's current holder got it
      dropped[o]   (drop line, dropper's `where` line at that moment or None) while o lies on the floor
      trip[o]      o's latest carried move: (from room or None, to room, acquire line, from line, to line)
      released[a]  a's latest drop or give-away
    """

    def __init__(self, rng: random.Random, actors: tuple[str, ...], rooms: tuple[str, ...],
                 objects: tuple[str, ...] = (), split_filter=None):
        self.rng = rng
        self.actors, self.rooms, self.objects = actors, rooms, objects
        # Starting positions are drawn but never narrated, as in bAbI.
        self.room = {a: rng.choice(rooms) for a in actors}
        self.floor = {o: rng.choice(rooms) for o in objects}
        self.holder: dict[str, str | None] = dict.fromkeys(objects)
        self.carrying: dict[str, list[str]] = {a: [] for a in actors}  # in the order acquired
        self.lines: list[BabiLine] = []
        self.n_statements = 0
        self.split_filter = split_filter
        self.where: dict[str, int | None] = dict.fromkeys(actors)
        self.latest: dict[str, tuple | None] = dict.fromkeys(actors)
        self.acquired: dict[str, int | None] = dict.fromkeys(objects)
        self.dropped: dict[str, tuple | None] = dict.fromkeys(objects)
        self.trip: dict[str, tuple | None] = dict.fromkeys(objects)
        self.released: dict[str, int | None] = dict.fromkeys(actors)
        self.involved: list[str] = []  # actors who took, dropped, gave or received an object
        self.last_give: tuple | None = None  # (giver, object, receiver, line)

    # -- writing lines ----------------------------------------------------------------------------------

    def say(self, text: str) -> int:
        line = BabiLine(len(self.lines) + 1, text)
        self.lines.append(line)
        self.n_statements += 1
        # Decide the split from the first two statements and stop at once if this story is not ours:
        # skipping costs two sentences, so the test split (10% of stories) is as cheap to make as train.
        if self.n_statements == 2 and self.split_filter is not None:
            first_two = [ln.text for ln in self.lines if ln.answer is None]
            if not self.split_filter(first_two):
                raise _WrongSplit
        return line.id

    def ask(self, question: str, answer: str, supporting: list[int]) -> None:
        self.lines.append(BabiLine(len(self.lines) + 1, question, answer, list(supporting)))

    def _involve(self, actor: str) -> None:
        if actor not in self.involved:
            self.involved.append(actor)

    # -- actions: each narrates one sentence and updates truth and knowledge -----------------------------

    def move(self, actor: str) -> None:
        room = self.rng.choice([r for r in self.rooms if r != self.room[actor]])  # never to where one is
        line = self.say(f"{actor} {self.rng.choice(MOVE_VERBS)} the {room}.")
        came_from = self.where[actor]
        for obj in self.carrying[actor]:
            self.trip[obj] = (self.room[actor] if came_from else None, room, self.acquired[obj], came_from, line)
        self.room[actor] = room
        self.where[actor] = line
        self.latest[actor] = ("at", (room,), line)

    def take(self, actor: str, obj: str, there: bool) -> None:
        line = self.say(f"{actor} {self.rng.choice(TAKE_VERBS)} the {obj}{' there' if there else ''}.")
        self.holder[obj] = actor
        self.carrying[actor].append(obj)
        self.acquired[obj] = line
        self.dropped[obj] = None
        self._involve(actor)

    def drop(self, actor: str, obj: str) -> None:
        there = self.rng.random() < 0.2  # "X dropped the milk there." about 1 time in 5
        line = self.say(f"{actor} {self.rng.choice(DROP_VERBS)} the {obj}{' there' if there else ''}.")
        self.holder[obj] = None
        self.carrying[actor].remove(obj)
        self.floor[obj] = self.room[actor]
        self.acquired[obj] = None
        self.dropped[obj] = (line, self.where[actor])
        self.released[actor] = line
        self._involve(actor)

    def give(self, giver: str, obj: str, receiver: str) -> None:
        line = self.say(f"{giver} {self.rng.choice(GIVE_VERBS)} the {obj} to {receiver}.")
        self.holder[obj] = receiver
        self.carrying[giver].remove(obj)
        self.carrying[receiver].append(obj)
        self.acquired[obj] = line
        self.released[giver] = line
        self.last_give = (giver, obj, receiver, line)
        self._involve(giver)
        self._involve(receiver)

    def state_in(self, actor: str) -> None:
        """ "X is in the L." states the actor's true room; it moves nobody (qa9, qa10)."""
        room = self.room[actor]
        line = self.say(f"{actor} is in the {room}.")
        self.where[actor] = line
        self.latest[actor] = ("at", (room,), line)

    def state_not_in(self, actor: str) -> None:
        """ "X is (not | no longer) in the L." names a room the actor is truly not in (qa9)."""
        room = self.rng.choice([r for r in self.rooms if r != self.room[actor]])
        phrase = self.rng.choice(("is not in", "is no longer in"))
        line = self.say(f"{actor} {phrase} the {room}.")
        self.latest[actor] = ("not", (room,), line)

    def state_either(self, actor: str) -> None:
        """ "X is either in the A or the B." where one of the two is true (qa10)."""
        pair = [self.room[actor], self.rng.choice([r for r in self.rooms if r != self.room[actor]])]
        self.rng.shuffle(pair)
        line = self.say(f"{actor} is either in the {pair[0]} or the {pair[1]}.")
        self.latest[actor] = ("either", tuple(pair), line)

    # -- random valid actions ---------------------------------------------------------------------------

    def step(self, weights: dict[str, float], take_there: float = 1.0) -> str:
        """Perform one random valid action; its kind is drawn by `weights` among the kinds possible now.

        Takes need an actor in the room of a free object and gives need two actors in one room, so they
        are not always possible; the weights in `_WEIGHTS` are tuned so that the realised shares of the
        statement kinds match the spec.
        """
        options: dict[str, list] = {}
        if "take" in weights:
            options["take"] = [(a, o) for o in self.objects if self.holder[o] is None
                               for a in self.actors if self.room[a] == self.floor[o]]
        if "drop" in weights:
            options["drop"] = [(a, o) for o in self.objects if (a := self.holder[o]) is not None]
        if "give" in weights:
            options["give"] = [(a, o, b) for o in self.objects if (a := self.holder[o]) is not None
                               for b in self.actors if b != a and self.room[b] == self.room[a]]
        kinds = [k for k in weights if k == "move" or options[k]]
        kind = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        if kind == "move":
            self.move(self.rng.choice(self.actors))
        elif kind == "take":
            actor, obj = self.rng.choice(options["take"])
            self.take(actor, obj, there=self.rng.random() < take_there)
        elif kind == "drop":
            self.drop(*self.rng.choice(options["drop"]))
        else:
            self.give(*self.rng.choice(options["give"]))
        return kind


# ----------------------------------------------------------------------------------------------------------
# Per-task story makers. Each returns the lines of one story (raising _WrongSplit to skip it).
# ----------------------------------------------------------------------------------------------------------

# Statement-kind weights. They are not the target shares themselves: impossible actions are skipped, which
# lowers takes and gives, so these were tuned until the realised shares met BABI_SPEC.md (tests check them).
# qa3 cannot quite reach "as qa2": every take but three needs a drop before it, so over qa3's long stories
# takes settle near 18.5% and drops near 15.5% (the spec's 20% / 15% come from qa2's shorter stories).
_WEIGHTS = {
    "qa2": {"move": 0.52, "take": 0.245, "drop": 0.235},
    "qa3": {"move": 0.47, "take": 0.41, "drop": 0.12},
    "qa5": {"move": 0.365, "take": 0.227, "drop": 0.097, "give": 0.311},
    "qa6": {"move": 0.545, "take": 0.31, "drop": 0.145},
    "qa7": {"move": 0.305, "take": 0.14, "drop": 0.105, "give": 0.45},
    "qa8": {"move": 0.52, "take": 0.25, "drop": 0.215},
}

# Longest stories seen in en-10k; longer draws are redrawn so that sizes stay within the measured range.
_MAX_LINES = {"qa2": 73, "qa3": 233, "qa5": 131, "qa6": 31, "qa7": 57, "qa8": 55}
_MIN_LINES = {"qa3": 17}

# Chance, once a block has its minimum length and a question is possible, of asking it after each further
# statement (for qa7/qa8 only in the first block; later blocks have exactly 2 statements). Tuned to the
# spec's median story lengths.
_ASK_CHANCE = {"qa2": 0.45, "qa3": 0.09, "qa5": 0.5, "qa7": 0.5, "qa8": 0.5}

# qa5 question forms and their measured shares.
_QA5_FORMS = (("what", 0.34), ("who_gave", 0.17), ("who_gave_to", 0.17), ("who_received", 0.16),
              ("who_to", 0.16))

# qa7/qa8: weights of each answer (number of objects carried: 0, 1, 2, 3) when choosing which actor to ask
# about. Left to chance the answer shares drift from en-10k's (qa8 gives "nothing" too often, two objects too
# rarely); these weights were tuned until they match.
_COUNT_WEIGHTS = {"qa7": (1.15, 0.9, 0.22, 0.05), "qa8": (0.45, 1.0, 0.55, 0.5)}

# qa10: when the actor's latest fact is an either-or, how often to ask about one of its two rooms ("maybe").
# About 0.147 / 0.25 (maybe answers / either-or share); tuned to 0.55 because the actor asked about has an
# either-or as latest fact slightly more often than a quarter of the time.
_QA10_MAYBE = 0.55


def _story_qa1(rng: random.Random, keep) -> list[BabiLine]:
    w = _World(rng, ACTORS, ROOMS, split_filter=keep)
    for _ in range(5):  # 5 x (2 moves + 1 question)
        w.move(rng.choice(ACTORS))
        w.move(rng.choice(ACTORS))
        actor = rng.choice([a for a in ACTORS if w.where[a]])
        w.ask(f"Where is {actor}?", w.room[actor], [w.where[actor]])
    return w.lines


def _where_is_object(w: _World, obj: str) -> tuple[str, list[int]] | None:
    """qa2: where the story puts an object, with the (object fact, location fact) that show it."""
    holder = w.holder[obj]
    if holder is not None:
        return (w.room[holder], [w.acquired[obj], w.where[holder]]) if w.where[holder] else None
    if w.dropped[obj] and w.dropped[obj][1]:
        drop_line, place_line = w.dropped[obj]
        return w.floor[obj], [drop_line, place_line]
    return None


def _story_objects(rng: random.Random, keep, task: str) -> list[BabiLine]:
    """qa2 and qa3: moves, takes and drops; a question once the story establishes an answer."""
    w = _World(rng, ACTORS, ROOMS, OBJECTS, split_filter=keep)
    take_there = 0.1 if task == "qa3" else 1.0  # qa3 mostly says "Mary took the apple." without "there"
    for q in range(5):
        n = 0
        # en-10k's qa3 never asks before 4 statements (the least a carried trip with a known start needs
        # is 3); later blocks, like qa2's, have at least 2.
        least = 4 if task == "qa3" and q == 0 else 2
        while True:
            w.step(_WEIGHTS[task], take_there)
            n += 1
            if n < least or rng.random() >= _ASK_CHANCE[task]:
                continue
            if task == "qa2":
                known = {o: found for o in OBJECTS if (found := _where_is_object(w, o))}
                if known:
                    obj = rng.choice(list(known))
                    room, support = known[obj]
                    w.ask(f"Where is the {obj}?", room, support)
                    break
            else:
                # "Where was the O before the L?" asks about the object's latest carried move, whose start
                # the carrier's previous location statement fixes: the acquisition, and the two moves.
                known = [o for o in OBJECTS if w.trip[o] and w.trip[o][0]]
                if known:
                    obj = rng.choice(known)
                    came_from, went_to, got, from_line, to_line = w.trip[obj]
                    w.ask(f"Where was the {obj} before the {went_to}?", came_from, [to_line, got, from_line])
                    break
    return w.lines


def _story_qa4(rng: random.Random, keep) -> list[BabiLine]:
    """Three rooms on a line; two facts relate the middle room to each end; one question."""
    low, mid, high = rng.sample(ROOMS, 3)
    up, down = rng.choice((("north", "south"), ("east", "west")))  # `high` lies `up` of `mid`
    facts = []
    for a, b in ((low, mid), (mid, high)):  # b is `up` of a; say it either way round
        facts.append(f"The {b} is {up} of the {a}." if rng.random() < 0.5 else f"The {a} is {down} of the {b}.")
    order = [0, 1]
    rng.shuffle(order)
    w = _World(rng, (), ROOMS, split_filter=keep)
    for i in order:
        w.say(facts[i])
    # Questions pivot on the middle room, with either phrasing: "What is <dir> of the mid?" -> an end, or
    # "What is the <end> <dir> of?" -> mid. Either way one fact answers it.
    pair = rng.randrange(2)
    end, direction = (low, down) if pair == 0 else (high, up)
    support = [order.index(pair) + 1]
    if rng.random() < 0.5:
        w.ask(f"What is {direction} of the {mid}?", end, support)
    else:
        w.ask(f"What is the {end} {direction} of?", mid, support)
    return w.lines


def _story_qa5(rng: random.Random, keep) -> list[BabiLine]:
    """Gives among Bill, Fred, Jeff and Mary; each question is about the latest give.

    Gives are only 16% of en-10k's qa5 statements while a median story has 24 statements for 5 questions,
    so a block need not hold a new give: like the real data, a question may ask again about an older one.
    """
    w = _World(rng, QA5_ACTORS, ROOMS, OBJECTS, split_filter=keep)
    forms, shares = zip(*_QA5_FORMS)
    for _ in range(5):
        n = 0
        while True:
            w.step(_WEIGHTS["qa5"])
            n += 1
            if n >= 2 and w.last_give and rng.random() < _ASK_CHANCE["qa5"]:
                break
        giver, obj, receiver, line = w.last_give
        form = rng.choices(forms, shares)[0]
        question, answer = {
            "what": (f"What did {giver} give to {receiver}?", obj),
            "who_gave": (f"Who gave the {obj}?", giver),
            "who_gave_to": (f"Who gave the {obj} to {receiver}?", giver),
            "who_received": (f"Who received the {obj}?", receiver),
            "who_to": (f"Who did {giver} give the {obj} to?", receiver),
        }[form]
        w.ask(question, answer, [line])
    return w.lines


def _story_qa6(rng: random.Random, keep) -> list[BabiLine]:
    """Yes/no questions on actors' rooms; each block has two moves among takes and drops."""
    w = _World(rng, ACTORS, ROOMS, OBJECTS, split_filter=keep)
    for _ in range(5):
        moves = 0
        while moves < 2:
            moves += w.step(_WEIGHTS["qa6"]) == "move"
        actor = rng.choice([a for a in ACTORS if w.where[a]])
        room = w.room[actor]
        if rng.random() < 0.5:
            room = rng.choice([r for r in ROOMS if r != room])
        w.ask(f"Is {actor} in the {room}?", "yes" if room == w.room[actor] else "no", [w.where[actor]])
    return w.lines


def _story_carrying(rng: random.Random, keep, task: str) -> list[BabiLine]:
    """qa7 and qa8: after a first block that ends once someone has touched an object, blocks of 2."""
    w = _World(rng, ACTORS, ROOMS, OBJECTS, split_filter=keep)
    for q in range(5):
        n = 0
        while n < 2 or not w.involved or (q == 0 and rng.random() >= _ASK_CHANCE[task]):
            w.step(_WEIGHTS[task])
            n += 1
        # Ask about an actor who has held something, choosing the answer's size by tuned weights.
        by_count: dict[int, list[str]] = {}
        for actor in w.involved:
            by_count.setdefault(len(w.carrying[actor]), []).append(actor)
        counts = sorted(by_count)
        count = rng.choices(counts, [_COUNT_WEIGHTS[task][c] for c in counts])[0]
        actor = rng.choice(by_count[count])
        held = w.carrying[actor]
        # Support: how each carried object was acquired; for empty hands, the latest letting-go.
        support = [w.acquired[o] for o in held] if held else [w.released[actor]]
        if task == "qa7":
            w.ask(f"How many objects is {actor} carrying?", COUNT_WORDS[count], support)
        else:
            w.ask(f"What is {actor} carrying?", ",".join(held) if held else "nothing", support)
    return w.lines


def _story_qa9(rng: random.Random, keep) -> list[BabiLine]:
    """Moves and (negated) location statements; "Is X in the L?" about the actor's latest fact."""
    w = _World(rng, ACTORS, ROOMS, split_filter=keep)
    for _ in range(5):
        for _ in range(2):
            actor, r = rng.choice(ACTORS), rng.random()
            if r < 0.5:
                w.move(actor)
            elif r < 0.75:
                w.state_in(actor)
            else:
                w.state_not_in(actor)
        actor = rng.choice([a for a in ACTORS if w.latest[a]])
        kind, (room,), line = w.latest[actor]
        answer = "yes" if kind == "at" else "no"
        if kind == "at" and rng.random() < 0.5:  # half the positive cases ask about another room
            room, answer = rng.choice([r for r in ROOMS if r != room]), "no"
        w.ask(f"Is {actor} in the {room}?", answer, [line])
    return w.lines


def _story_qa10(rng: random.Random, keep) -> list[BabiLine]:
    """Moves, "X is in the L." and "X is either in the A or the B."; answers yes, no or maybe."""
    w = _World(rng, QA10_ACTORS, QA10_ROOMS, split_filter=keep)
    for _ in range(5):
        for _ in range(2):
            actor, r = rng.choice(QA10_ACTORS), rng.random()
            if r < 0.5:
                w.move(actor)
            elif r < 0.75:
                w.state_in(actor)
            else:
                w.state_either(actor)
        actor = rng.choice([a for a in QA10_ACTORS if w.latest[a]])
        kind, rooms, line = w.latest[actor]
        others = [r for r in QA10_ROOMS if r not in rooms]
        if kind == "at":
            room, answer = (rooms[0], "yes") if rng.random() < 0.5 else (rng.choice(others), "no")
        else:  # the latest word on the actor is an either-or: "maybe" for its rooms, "no" elsewhere
            room, answer = (rng.choice(rooms), "maybe") if rng.random() < _QA10_MAYBE else (rng.choice(others), "no")
        w.ask(f"Is {actor} in the {room}?", answer, [line])
    return w.lines


_MAKERS = {
    "qa1": _story_qa1,
    "qa2": lambda rng, keep: _story_objects(rng, keep, "qa2"),
    "qa3": lambda rng, keep: _story_objects(rng, keep, "qa3"),
    "qa4": _story_qa4,
    "qa5": _story_qa5,
    "qa6": _story_qa6,
    "qa7": lambda rng, keep: _story_carrying(rng, keep, "qa7"),
    "qa8": lambda rng, keep: _story_carrying(rng, keep, "qa8"),
    "qa9": _story_qa9,
    "qa10": _story_qa10,
}


# ----------------------------------------------------------------------------------------------------------
# Splits, streams and the public generators
# ----------------------------------------------------------------------------------------------------------


def _digest(text: str) -> int:
    # blake2b rather than hash(): Python salts str hashes per process, and splits must never move.
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def story_split(task: str, first_two_statements: list[str]) -> str:
    """The split a story belongs to, decided by its first two statements.

    Keying on the first two statements (not the whole text) means that stories which share any BABILong
    sample (every sample has at least two facts, and its facts are a prefix of the story's statements) also
    share their split, so neither stories nor samples can leak from train into test.
    """
    key = f"{check_task(task)}\n" + "\n".join(first_two_statements)
    return "test" if _digest(key) % 1000 < TEST_FRACTION * 1000 else "train"


def _stream(task: str, split: str, seed: int) -> Iterator[Story]:
    """Stories of one split, in a fixed order for (task, seed).

    Attempt k draws from its own RNG seeded by (task, seed, k), so train and test walk the same attempts
    and each keeps the ones that hash to it; too long (or short) stories are redrawn from the same RNG.
    """
    make, keep = _MAKERS[task], (lambda first_two: story_split(task, first_two) == split)
    k = 0
    while True:
        rng = random.Random(_digest(f"babi:{task}:{seed}:{k}"))
        k += 1
        while True:
            try:
                lines = make(rng, keep)
            except _WrongSplit:
                break
            if _MIN_LINES.get(task, 0) <= len(lines) <= _MAX_LINES.get(task, len(lines)):
                yield Story(task, lines)
                break


def generate_stories(task: str, n: int, split: str = "train", seed: int = 0) -> list[Story]:
    """`n` bAbI stories of `task`, reproducible from (task, split, seed); train and test never share one."""
    task, split, n = check_task(task), _check_split(split), _check_count(n, "stories")
    stream = _stream(task, split, seed)
    return [next(stream) for _ in range(n)]


def story_samples(story: Story) -> list[BabiSample]:
    """One BABILong sample per question: the question with every statement of the story before it."""
    samples, facts, fact_index = [], [], {}
    for line in story.lines:
        if line.answer is None:
            fact_index[line.id] = len(facts)
            facts.append(line.text)
            continue
        missing = [i for i in line.supporting if i not in fact_index]
        if missing:
            raise ValueError(f"{story.task} line {line.id}: supporting ids {missing} are not earlier statements")
        samples.append(BabiSample(story.task, list(facts), line.text, line.answer,
                                  [fact_index[i] for i in line.supporting]))
    return samples


def generate_samples(task: str, n: int, split: str = "train", seed: int = 0) -> list[BabiSample]:
    """`n` questions of `task` with their facts: the questions of `generate_stories`'s stories, in order."""
    task, split, n = check_task(task), _check_split(split), _check_count(n, "samples")
    samples: list[BabiSample] = []
    stream = _stream(task, split, seed)
    while len(samples) < n:
        samples.extend(story_samples(next(stream)))
    return samples[:n]


# ----------------------------------------------------------------------------------------------------------
# The bAbI text format
# ----------------------------------------------------------------------------------------------------------


def format_babi(stories: Iterable[Story]) -> str:
    """Stories in the bAbI text format (what `write_babi` writes)."""
    out = []
    for story in stories:
        task = check_task(story.task)
        # Real files keep a space before the tab after a question, except qa4's.
        gap = "" if task == "qa4" else " "
        for position, line in enumerate(story.lines, 1):
            if line.id != position:
                raise ValueError(f"{task} story: line ids must count 1, 2, 3, ...; found {line.id} at {position}")
            if "\t" in line.text or "\n" in line.text:
                raise ValueError(f"{task} line {line.id}: text may not contain tabs or newlines: {line.text!r}")
            if line.answer is None:
                out.append(f"{line.id} {line.text}\n")
            else:
                support = " ".join(str(i) for i in line.supporting)
                out.append(f"{line.id} {line.text}{gap}\t{line.answer}\t{support}\n")
    return "".join(out)


def write_babi(stories: Iterable[Story], path_or_file: str | os.PathLike | TextIO) -> None:
    """Write stories in the bAbI text format to a path or an open text file."""
    text = format_babi(stories)
    if hasattr(path_or_file, "write"):
        path_or_file.write(text)
    else:
        Path(path_or_file).write_text(text, encoding="utf-8")


_LINE = re.compile(r"(\d+) (.+)")


def read_babi(path_or_text: str | os.PathLike | TextIO, task: str | None = None) -> list[Story]:
    """Read stories in the bAbI text format (real v1.2 files included) from a path, an open file or text.

    `task` defaults to the "qaN_" prefix of the file name, or else is told from the questions.
    A malformed line raises ValueError naming the file and the line number.
    """
    name, text = _load(path_or_text)
    stories: list[Story] = []
    lines: list[BabiLine] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue

        def bad(why: str) -> ValueError:
            return ValueError(f"{name}, line {number}: {why}: {raw!r}")  # noqa: B023  (called in this iteration only)

        match = _LINE.fullmatch(raw.rstrip("\r"))
        if not match:
            raise bad("expected 'N sentence' (an id, a space, then the text)")
        line_id, body = int(match[1]), match[2]
        if line_id == 1:
            lines = []
            stories.append(Story("", lines))
        elif not stories or line_id != len(lines) + 1:
            raise bad(f"ids must restart at 1 for each story and count up by one; expected {len(lines) + 1}")
        if "\t" not in body:
            lines.append(BabiLine(line_id, body.strip()))
            continue
        parts = body.split("\t")
        if len(parts) != 3:
            raise bad("a question line needs 'question<TAB>answer<TAB>supporting ids'")
        question, answer, support = parts[0].strip(), parts[1].strip(), parts[2].split()
        if not question or not answer:
            raise bad("a question line needs a question and an answer")
        if not all(s.isdigit() for s in support):
            raise bad("supporting ids must be whole numbers separated by spaces")
        lines.append(BabiLine(line_id, question, answer, [int(s) for s in support]))
    if task is None:
        task = _task_from_name(name) or _task_from_content(stories, name)
    task = check_task(task)
    for story in stories:
        story.task = task
    return stories


def _load(source) -> tuple[str, str]:
    """(name for messages, text) of a path, an open file or a bAbI text."""
    if hasattr(source, "read"):
        return getattr(source, "name", "<file>"), source.read()
    if isinstance(source, os.PathLike):
        return str(source), Path(source).read_text(encoding="utf-8")
    if not isinstance(source, str):
        raise ValueError(f"read_babi takes a path, an open file or bAbI text, got {type(source).__name__}")
    # Text has a newline or starts like a bAbI line ("1 Mary ..."); anything else is a path.
    if "\n" in source or _LINE.match(source):
        return "<text>", source
    return source, Path(source).read_text(encoding="utf-8")


def _task_from_name(name: str) -> str | None:
    match = re.match(r"qa(\d+)_", os.path.basename(name))
    return f"qa{int(match[1])}" if match and f"qa{int(match[1])}" in TASKS else None


def _task_from_content(stories: list[Story], name: str) -> str:
    """Tell the task from its question forms (and, for the three yes/no tasks, from its statements)."""
    questions = [ln.text for s in stories for ln in s.lines if ln.answer is not None]
    statements = [ln.text for s in stories for ln in s.lines if ln.answer is None]
    answers = {ln.answer for s in stories for ln in s.lines if ln.answer is not None}
    rules = (
        ("qa7", r"How many objects is \w+ carrying\?"),
        ("qa8", r"What is [A-Z]\w* carrying\?"),
        ("qa3", r"Where was the \w+ before the \w+\?"),
        ("qa2", r"Where is the \w+\?"),
        ("qa1", r"Where is [A-Z]\w*\?"),
        ("qa4", r"What is (the \w+ \w+ of|\w+ of the \w+)\?"),
        ("qa5", r"(What did|Who gave|Who received|Who did) .*\?"),
    )
    for task, pattern in rules:
        if questions and all(re.fullmatch(pattern, q) for q in questions):
            return task
    if questions and all(re.fullmatch(r"Is \w+ in the \w+\?", q) for q in questions):
        if "maybe" in answers or any(" is either in the " in s for s in statements):
            return "qa10"
        if any(re.fullmatch(r"\w+ is (not |no longer )?in the \w+\.", s) for s in statements):
            return "qa9"
        return "qa6"
    raise ValueError(f"{name}: cannot tell which bAbI task this is from its questions; pass task='qaN'")

