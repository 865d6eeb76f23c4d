"""An independent checker of bAbI stories (qa1-qa10): replay the text, re-derive every answer.

It shares nothing with the generator in `lm2.data.babi` but the data types: it parses each sentence with
its own patterns, keeps its own picture of the world built from the text alone, and recomputes each
question's answer and supporting line ids. A story that passes is internally consistent (no one moves to
the room they are in, takes an object somebody holds, drops what they do not hold, gives to someone in
another room), every question is answerable from the statements before it, and the stated answer and
supporting ids are the ones the text implies. It reads real bAbI v1.2 stories as well as generated ones.

Semantics it applies (the bAbI conventions, BABI_SPEC.md):
* Where is X? the room of X's latest location statement; support: that statement.
* Where is the O? the holder's room (support: how the holder got O, and the holder's latest location
  statement), or where O was dropped (the drop, and the dropper's location statement before it).
* Where was the O before the L? the room O left on its latest carried trip into L; support: how the
  carrier got O, the carrier's location statement before the trip, and the trip.
* Is X in the L? decided by X's latest statement: a room (yes/no), an either-or (maybe/no), a negation
  of L (no); support: that statement.
* Give questions: the latest give matching the question; support: that give.
* How many / what is X carrying? X's objects in the order acquired; supports must be statements where X
  took, dropped, gave or received something.
* qa4 relations are direct facts about neighbouring rooms on one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lm2.data.babi import BabiLine, Story

_NUMBERS = ("none", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
_STEP = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}

# Statements, tried in this order (the "is in" patterns before the action verbs).
_STATEMENTS = (
    ("relation", re.compile(r"The (\w+) is (north|south|east|west) of the (\w+)\.")),
    ("either", re.compile(r"(\w+) is either in the (\w+) or the (\w+)\.")),
    ("not", re.compile(r"(\w+) is (?:not|no longer) in the (\w+)\.")),
    ("at", re.compile(r"(\w+) is in the (\w+)\.")),
    ("give", re.compile(r"(\w+) (?:gave|passed|handed) the (\w+) to (\w+)\.")),
    ("take", re.compile(r"(\w+) (?:got|took|picked up|grabbed) the (\w+)(?: there)?\.")),
    ("drop", re.compile(r"(\w+) (?:dropped|left|discarded|put down) the (\w+)(?: there)?\.")),
    ("move", re.compile(r"(\w+) (?:went|journeyed|travelled|went back|moved) to the (\w+)\.")),
)

_QUESTIONS = (
    ("where_object", re.compile(r"Where is the (\w+)\?")),
    ("where_actor", re.compile(r"Where is (\w+)\?")),
    ("before", re.compile(r"Where was the (\w+) before the (\w+)\?")),
    ("what_of", re.compile(r"What is (north|south|east|west) of the (\w+)\?")),
    ("what_is_of", re.compile(r"What is the (\w+) (north|south|east|west) of\?")),
    ("what_gave_to", re.compile(r"What did (\w+) give to (\w+)\?")),
    ("who_gave_to", re.compile(r"Who gave the (\w+) to (\w+)\?")),
    ("who_gave", re.compile(r"Who gave the (\w+)\?")),
    ("who_received", re.compile(r"Who received the (\w+)\?")),
    ("who_to", re.compile(r"Who did (\w+) give the (\w+) to\?")),
    ("is_in", re.compile(r"Is (\w+) in the (\w+)\?")),
    ("how_many", re.compile(r"How many objects is (\w+) carrying\?")),
    ("what_carrying", re.compile(r"What is (\w+) carrying\?")),
)


class _Unanswerable(Exception):
    """The text so far does not determine the answer."""


def _parse(patterns, text: str):
    for kind, pattern in patterns:
        match = pattern.fullmatch(text)
        if match:
            return kind, match.groups()
    return None


class _Replay:
    """What one story's text has said so far, statement by statement."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.statement_ids: set[int] = set()
        self.place: dict[str, tuple[str, int]] = {}  # actor -> (room, line) from a move or "is in"
        self.latest: dict[str, tuple[str, tuple[str, ...], int]] = {}  # actor -> latest location statement
        self.negated: dict[str, dict[str, int]] = {}  # actor -> {room: line} negations since a positive fact
        self.holder: dict[str, str] = {}  # object -> actor holding it
        self.got: dict[str, int] = {}  # object -> line by which the holder got it
        self.hands: dict[str, list[str]] = {}  # actor -> objects in the order acquired
        self.lying: dict[str, tuple[str | None, int, int | None]] = {}  # object -> (room, drop, place line)
        self.trips: dict[str, list[tuple]] = {}  # object -> [(from room, to room, got, from line, to line)]
        self.gives: list[tuple[str, str, str, int]] = []  # (giver, object, receiver, line)
        self.touches: dict[str, set[int]] = {}  # actor -> lines where they took/dropped/gave/received
        self.relations: list[tuple[str, str, str, int]] = []  # (a, direction, b, line): a is direction of b

    def problem(self, line: BabiLine, why: str) -> None:
        self.problems.append(f"line {line.id} ({line.text!r}): {why}")

    # -- statements -------------------------------------------------------------------------------------

    def statement(self, line: BabiLine) -> None:
        parsed = _parse(_STATEMENTS, line.text)
        if parsed is None:
            self.problem(line, "not a bAbI statement this checker knows")
            return
        self.statement_ids.add(line.id)
        kind, args = parsed
        getattr(self, f"_{kind}")(line, *args)

    def _room_of(self, actor: str) -> str | None:
        return self.place[actor][0] if actor in self.place else None

    def _set_place(self, actor: str, room: str, line: BabiLine) -> None:
        self.place[actor] = (room, line.id)
        self.latest[actor] = ("at", (room,), line.id)
        self.negated[actor] = {}

    def _move(self, line: BabiLine, actor: str, room: str) -> None:
        came_from = self.place.get(actor)
        if came_from and came_from[0] == room:
            self.problem(line, f"{actor} moves to the {room}, where the story already has them")
        for obj in self.hands.get(actor, []):
            self.trips.setdefault(obj, []).append(
                (came_from[0] if came_from else None, room, self.got[obj], came_from[1] if came_from else None,
                 line.id))
        self._set_place(actor, room, line)

    def _at(self, line: BabiLine, actor: str, room: str) -> None:
        known = self._room_of(actor)
        if known is not None and known != room:
            self.problem(line, f"the story last put {actor} in the {known} and nobody moved since")
        if room in self.negated.get(actor, {}):
            self.problem(line, f"the story said {actor} is not in the {room}")
        self._set_place(actor, room, line)

    def _not(self, line: BabiLine, actor: str, room: str) -> None:
        if self._room_of(actor) == room:
            self.problem(line, f"contradicts the story, which has {actor} in the {room}")
        self.negated.setdefault(actor, {})[room] = line.id
        self.latest[actor] = ("not", (room,), line.id)

    def _either(self, line: BabiLine, actor: str, room_a: str, room_b: str) -> None:
        if room_a == room_b:
            self.problem(line, "an either-or needs two different rooms")
        # bAbI lets the latest statement win: after an either-or the definite room is no longer known.
        self.place.pop(actor, None)
        self.latest[actor] = ("either", (room_a, room_b), line.id)
        self.negated[actor] = {}

    def _touch(self, actor: str, line: BabiLine) -> None:
        self.touches.setdefault(actor, set()).add(line.id)

    def _take(self, line: BabiLine, actor: str, obj: str) -> None:
        if obj in self.holder:
            self.problem(line, f"{self.holder[obj]} already holds the {obj}")
            self.hands[self.holder[obj]].remove(obj)
        room = self._room_of(actor)
        lying = self.lying.get(obj)
        if room is not None and lying and lying[0] is not None and lying[0] != room:
            self.problem(line, f"the {obj} lies in the {lying[0]} but {actor} is in the {room}")
        self.holder[obj] = actor
        self.got[obj] = line.id
        self.hands.setdefault(actor, []).append(obj)
        self.lying.pop(obj, None)
        self._touch(actor, line)

    def _drop(self, line: BabiLine, actor: str, obj: str) -> None:
        if self.holder.get(obj) != actor:
            self.problem(line, f"{actor} does not hold the {obj}")
        else:
            self.hands[actor].remove(obj)
            del self.holder[obj]
        place = self.place.get(actor)
        self.lying[obj] = (place[0] if place else None, line.id, place[1] if place else None)
        self._touch(actor, line)

    def _give(self, line: BabiLine, giver: str, obj: str, receiver: str) -> None:
        if giver == receiver:
            self.problem(line, "someone gives an object to themselves")
        if self.holder.get(obj) != giver:
            self.problem(line, f"{giver} does not hold the {obj}")
        else:
            self.hands[giver].remove(obj)
        room_g, room_r = self._room_of(giver), self._room_of(receiver)
        if room_g is not None and room_r is not None and room_g != room_r:
            self.problem(line, f"{giver} is in the {room_g} but {receiver} is in the {room_r}")
        self.holder[obj] = receiver
        self.got[obj] = line.id
        self.hands.setdefault(receiver, []).append(obj)
        self.gives.append((giver, obj, receiver, line.id))
        self._touch(giver, line)
        self._touch(receiver, line)

    def _relation(self, line: BabiLine, room_a: str, direction: str, room_b: str) -> None:
        if room_a == room_b:
            self.problem(line, "a room cannot be next to itself")
        self.relations.append((room_a, direction, room_b, line.id))
        self._check_line_of_rooms(line)

    def _check_line_of_rooms(self, line: BabiLine) -> None:
        """qa4's rooms must sit on one straight line, each on its own square."""
        position = {self.relations[0][2]: (0, 0)}
        pending = list(self.relations)
        while pending:
            progress = False
            for rel in list(pending):
                a, direction, b, _ = rel
                dx, dy = _STEP[direction]
                if b in position and a not in position:
                    position[a] = (position[b][0] + dx, position[b][1] + dy)
                elif a in position and b not in position:
                    position[b] = (position[a][0] - dx, position[a][1] - dy)
                elif a in position and b in position:
                    if position[a] != (position[b][0] + dx, position[b][1] + dy):
                        self.problem(line, "the relations contradict each other")
                else:
                    continue
                pending.remove(rel)
                progress = True
            if not progress:
                return  # unconnected relations: nothing to compare yet
        squares = list(position.values())
        if len(set(squares)) != len(squares):
            self.problem(line, "two rooms end up on the same square")
        if len({x for x, _ in squares}) > 1 and len({y for _, y in squares}) > 1:
            self.problem(line, "the rooms are not on one line")

    # -- questions --------------------------------------------------------------------------------------

    def question(self, line: BabiLine) -> None:
        for i in line.supporting:
            if i not in self.statement_ids:
                self.problem(line, f"supporting id {i} is not an earlier statement of the story")
        if not line.supporting:
            self.problem(line, "a question needs at least one supporting id")
        if len(set(line.supporting)) != len(line.supporting):
            self.problem(line, "supporting ids repeat")
        parsed = _parse(_QUESTIONS, line.text)
        if parsed is None:
            self.problem(line, "not a bAbI question this checker knows")
            return
        kind, args = parsed
        try:
            answer, support = getattr(self, f"_q_{kind}")(*args)
        except _Unanswerable as why:
            self.problem(line, f"not answerable from the story so far: {why}")
            return
        if line.answer != answer:
            self.problem(line, f"answer {line.answer!r}, but the story says {answer!r}")
        if callable(support):  # a rule on the ids rather than one exact set
            why = support(set(line.supporting))
            if why:
                self.problem(line, why)
        elif set(line.supporting) != support:
            self.problem(line, f"supporting ids {sorted(line.supporting)}, but the story gives {sorted(support)}")

    def _q_where_actor(self, actor):
        if actor not in self.place:
            raise _Unanswerable(f"no statement puts {actor} in a room")
        room, at = self.place[actor]
        return room, {at}

    def _q_where_object(self, obj):
        if obj in self.holder:
            actor = self.holder[obj]
            if actor not in self.place:
                raise _Unanswerable(f"{actor} holds the {obj} but no statement says where {actor} is")
            room, at = self.place[actor]
            return room, {self.got[obj], at}
        if obj in self.lying and self.lying[obj][0] is not None:
            room, dropped, at = self.lying[obj]
            return room, {dropped, at}
        raise _Unanswerable(f"nothing places the {obj}")

    def _q_before(self, obj, room):
        for came_from, went_to, got, from_line, to_line in reversed(self.trips.get(obj, [])):
            if went_to == room:
                if came_from is None:
                    raise _Unanswerable(f"where the {obj} was before its last trip to the {room} is unknown")
                return came_from, {got, from_line, to_line}
        raise _Unanswerable(f"the {obj} was never carried into the {room}")

    def _neighbour(self, room, direction, inverse: bool):
        """The room `direction` of `room` (inverse=False) or that `room` is `direction` of (inverse=True)."""
        found = set()
        for a, d, b, at in self.relations:
            for x, dd, y in ((a, d, b), (b, _OPPOSITE[d], a)):  # "a is d of b" == "b is opposite(d) of a"
                if dd == direction and (y == room if not inverse else x == room):
                    found.add((x if not inverse else y, at))
        rooms = {r for r, _ in found}
        if len(rooms) != 1:
            raise _Unanswerable(f"{len(rooms)} rooms fit")
        return rooms.pop(), {at for _, at in found}

    def _q_what_of(self, direction, room):
        return self._neighbour(room, direction, inverse=False)

    def _q_what_is_of(self, room, direction):
        return self._neighbour(room, direction, inverse=True)

    def _latest_give(self, giver=None, obj=None, receiver=None):
        for g, o, r, at in reversed(self.gives):
            if giver in (None, g) and obj in (None, o) and receiver in (None, r):
                return g, o, r, at
        raise _Unanswerable("no such give")

    def _q_what_gave_to(self, giver, receiver):
        _, obj, _, at = self._latest_give(giver=giver, receiver=receiver)
        return obj, {at}

    def _q_who_gave_to(self, obj, receiver):
        giver, _, _, at = self._latest_give(obj=obj, receiver=receiver)
        return giver, {at}

    def _q_who_gave(self, obj):
        giver, _, _, at = self._latest_give(obj=obj)
        return giver, {at}

    def _q_who_received(self, obj):
        _, _, receiver, at = self._latest_give(obj=obj)
        return receiver, {at}

    def _q_who_to(self, giver, obj):
        _, _, receiver, at = self._latest_give(giver=giver, obj=obj)
        return receiver, {at}

    def _q_is_in(self, actor, room):
        if actor not in self.latest:
            raise _Unanswerable(f"nothing is known about where {actor} is")
        kind, rooms, at = self.latest[actor]
        if kind == "either":
            return ("maybe" if room in rooms else "no"), {at}
        if room in self.negated.get(actor, {}):
            return "no", {self.negated[actor][room]}
        if actor in self.place:  # negations of other rooms leave the last definite room standing
            known, at = self.place[actor]
            return ("yes" if room == known else "no"), {at}
        raise _Unanswerable(f"the latest statement about {actor} does not decide the {room}")

    def _holdings(self, actor):
        if actor not in self.touches:
            raise _Unanswerable(f"{actor} has never held anything")
        held = self.hands.get(actor, [])
        allowed = self.touches[actor]

        def rule(ids: set[int]) -> str | None:
            stray = sorted(ids - allowed)
            return f"supporting ids {stray} do not show {actor} taking or letting go of anything" if stray else None

        return held, rule

    def _q_how_many(self, actor):
        held, rule = self._holdings(actor)
        return _NUMBERS[len(held)], rule

    def _q_what_carrying(self, actor):
        held, rule = self._holdings(actor)
        return (",".join(held) if held else "nothing"), rule


def check_story(story: Story) -> list[str]:
    """Problems found in one story (an empty list when it is consistent and every answer checks out)."""
    replay = _Replay()
    for position, line in enumerate(story.lines, 1):
        if line.id != position:
            replay.problem(line, f"expected id {position}")
        if line.answer is None:
            if line.supporting:
                replay.problem(line, "a statement has supporting ids")
            replay.statement(line)
        else:
            replay.question(line)
    if not any(line.answer is not None for line in story.lines):
        replay.problems.append("the story asks no question")
    return [f"{story.task}: {p}" for p in replay.problems]


def check_stories(stories: Iterable[Story], raise_on_problem: bool = True) -> dict[str, int]:
    """Check many stories; return counts, or raise ValueError listing the first problems found."""
    counts = {"stories": 0, "statements": 0, "questions": 0, "problems": 0}
    found: list[str] = []
    for index, story in enumerate(stories):
        counts["stories"] += 1
        counts["questions"] += sum(line.answer is not None for line in story.lines)
        counts["statements"] += sum(line.answer is None for line in story.lines)
        problems = check_story(story)
        counts["problems"] += len(problems)
        found.extend(f"story {index}: {p}" for p in problems[:3])
    if found and raise_on_problem:
        shown = "\n  ".join(found[:10])
        raise ValueError(f"{counts['problems']} problems in {counts['stories']} stories, first ones:\n  {shown}")
    return counts
