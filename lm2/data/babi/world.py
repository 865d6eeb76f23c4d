"""The world of one bAbI story: the hidden truth and what the story has established, and the actions that narrate it.

How a story is made: a hidden world state (where everybody and everything truly is) decides which actions
are possible; every action is narrated, but the starting positions never are, exactly as in bAbI where a
story may open with "Mary got the milk there.". Beside the truth we track what the story has *established*
(which line fixes what), because a question may only ask about something the text already determines, and
its supporting ids are those lines.
"""

from __future__ import annotations

import random

from lm2.data.babi.common import DROP_VERBS, GIVE_VERBS, MOVE_VERBS, TAKE_VERBS, BabiLine


class WrongSplit(Exception):
    """Raised as soon as a story's first two statements show that it belongs to the other split."""


class World:
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
                raise WrongSplit
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
        are not always possible; the weights in `_WEIGHTS` (``lm2.data.babi.tasks``) are tuned so that the
        realised shares of the statement kinds match the spec.
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
