"""Every question a point of a qa1-qa5 story can ask, worked out from the story's statements (training only).

bAbI asks one question at each question point; the statements before it usually settle many more (where each
person is, where each object is, the latest give in all five of qa5's forms). `every_question` lists them, in
the forms and with the answers and supporting facts the generator (``lm2.data.babi.tasks``) gives its own
questions, so that a training story can supervise each of them (``data.ask_everyone``). The story's own question
is always among them. The statements are read back from their text alone, with the verbs of ``common``.
"""

from __future__ import annotations

from lm2.data.babi.common import DROP_VERBS, GIVE_VERBS, MOVE_VERBS, OBJECTS, TAKE_VERBS, BabiSample

EVERY_QUESTION_TASKS = ("qa1", "qa2", "qa3", "qa4", "qa5")
STEP_TASKS = ("qa2", "qa3")  # tasks whose answers `with_step` can write with their first hop
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}


def _statement(fact: str) -> tuple[str, ...]:
    """("move", actor, room) | ("take" | "drop", actor, object) | ("give", giver, object, receiver)
    | ("relation", room, direction, room) for one statement of qa1-qa5."""
    words = fact.rstrip(".").split()
    if words and words[-1] == "there":
        words = words[:-1]
    if words[:1] == ["The"] and len(words) == 7 and words[2] == "is" and words[4:6] == ["of", "the"]:
        return ("relation", words[1], words[3], words[6])  # "The kitchen is north of the garden."
    actor, rest = words[0], " ".join(words[1:])
    for kind, verbs in (("move", MOVE_VERBS), ("take", TAKE_VERBS), ("drop", DROP_VERBS), ("give", GIVE_VERBS)):
        for verb in verbs:
            if not rest.startswith(verb + " the "):
                continue
            tail = rest[len(verb) + 5:].split()
            if kind == "give" and len(tail) == 3 and tail[1] == "to":
                return ("give", actor, tail[0], tail[2])
            if kind != "give" and len(tail) == 1:
                return (kind, actor, tail[0])
    raise ValueError(f"not a qa1-qa5 statement: {fact!r}")


class _Replay:
    """What a story's statements have established, one statement at a time (as ``World`` tracks it)."""

    def __init__(self) -> None:
        self.place: dict[str, tuple[str, int]] = {}  # actor -> (room, index of the move)
        self.holder: dict[str, tuple[str, int]] = {}  # object -> (actor, index of how they got it)
        self.lying: dict[str, tuple[str, int, int]] = {}  # object -> (room, drop, the dropper's move before it)
        self.trip: dict[str, tuple[str, str, int, int, int]] = {}  # object -> latest carried trip with a known start
        self.give: tuple[str, str, str, int] | None = None  # latest (giver, object, receiver, index)
        self.relations: list[tuple[str, str, str, int]] = []  # (room, direction, room, index)

    def add(self, index: int, fact: str) -> None:
        kind, *args = _statement(fact)
        if kind == "move":
            actor, room = args
            before = self.place.get(actor)
            for obj, (holder, got) in self.holder.items():
                if holder != actor:
                    continue
                if before is None:  # a trip whose start the story never said: no "before" to ask about
                    self.trip.pop(obj, None)
                else:
                    self.trip[obj] = (before[0], room, got, before[1], index)
            self.place[actor] = (room, index)
        elif kind == "take":
            actor, obj = args
            self.holder[obj] = (actor, index)
            self.lying.pop(obj, None)
        elif kind == "drop":
            actor, obj = args
            self.holder.pop(obj, None)
            if actor in self.place:
                self.lying[obj] = (self.place[actor][0], index, self.place[actor][1])
            else:
                self.lying.pop(obj, None)
        elif kind == "give":
            giver, obj, receiver = args
            self.holder[obj] = (receiver, index)
            self.give = (giver, obj, receiver, index)
        else:
            self.relations.append((args[0], args[1], args[2], index))

    def questions(self, task: str) -> list[tuple[str, str, list[int]]]:
        """(question, answer, supporting fact indices) for everything `task` may ask about now."""
        if task == "qa1":
            return [(f"Where is {actor}?", room, [i]) for actor, (room, i) in sorted(self.place.items())]
        if task == "qa2":
            asked = []
            for obj in OBJECTS:
                if obj in self.holder:
                    actor, got = self.holder[obj]
                    if actor in self.place:
                        asked.append((f"Where is the {obj}?", self.place[actor][0], [got, self.place[actor][1]]))
                elif obj in self.lying:
                    room, drop, placed = self.lying[obj]
                    asked.append((f"Where is the {obj}?", room, [drop, placed]))
            return asked
        if task == "qa3":
            return [(f"Where was the {obj} before the {went_to}?", came_from, [to_line, got, from_line])
                    for obj, (came_from, went_to, got, from_line, to_line) in sorted(self.trip.items())]
        if task == "qa4":
            return self._relation_questions()
        if task == "qa5":
            if self.give is None:
                return []
            giver, obj, receiver, i = self.give
            return [(f"What did {giver} give to {receiver}?", obj, [i]), (f"Who gave the {obj}?", giver, [i]),
                    (f"Who gave the {obj} to {receiver}?", giver, [i]), (f"Who received the {obj}?", receiver, [i]),
                    (f"Who did {giver} give the {obj} to?", receiver, [i])]
        raise ValueError(f"every_question knows {', '.join(EVERY_QUESTION_TASKS)}, not {task}")

    def _relation_questions(self) -> list[tuple[str, str, list[int]]]:
        """qa4's questions pivot on the room both relations name: what lies each way of it, and what each end
        lies that way of."""
        if len(self.relations) != 2:
            return []
        rooms = [{a, b} for a, _, b, _ in self.relations]
        shared = rooms[0] & rooms[1]
        if len(shared) != 1:
            return []
        (mid,) = shared
        asked = []
        for a, direction, b, i in self.relations:  # a is `direction` of b
            end, way = (a, direction) if b == mid else (b, _OPPOSITE[direction])  # end lies `way` of mid
            asked.append((f"What is {way} of the {mid}?", end, [i]))
            asked.append((f"What is the {end} {way} of?", mid, [i]))
        return asked


def replay(facts: list[str]) -> _Replay:
    """What ``facts`` establish: ``place`` {person: (room, fact index)}, ``holder`` {object: (person, index)},
    ``lying``, ``trip``, ``give`` and ``relations`` (see ``_Replay``)."""
    state = _Replay()
    for index, fact in enumerate(facts):
        state.add(index, fact)
    return state


def every_question(sample: BabiSample) -> list[BabiSample]:
    """Every question of ``sample``'s task that its statements answer at the point where it is asked (``sample``'s
    own question among them), each with its answer and supporting facts (indices into ``sample.facts``).

    qa1: where each person is; qa2: where each object is that the story places; qa3: where each object was before
    its latest carried trip (when the story said where that trip began); qa4: the four questions that pivot on the
    room both relations name; qa5: the latest give asked in each of its five forms.
    """
    if sample.task not in EVERY_QUESTION_TASKS:
        raise ValueError(f"every_question is defined for {', '.join(EVERY_QUESTION_TASKS)}, not {sample.task}")
    return [BabiSample(sample.task, list(sample.facts), question, answer, support)
            for question, answer, support in replay(sample.facts).questions(sample.task)]


def with_step(sample: BabiSample) -> BabiSample:
    """``sample`` with its answer written after the person its first hop finds ("Mary kitchen"; training only).

    A qa2 or qa3 answer chains two lookups: qa2 "Where is the milk?" needs who last handled the milk (who got it,
    or who dropped it), then where that person was; qa3 "Where was the milk before the office?" needs who carried
    it into the office, then where that person was before. Written out, the person is a token the model has read
    by the time it names the room, so each generated word takes one lookup. The person is the subject of the first
    supporting fact (the object's last statement in qa2, the carrier's move in qa3); BABILong's label rule, which
    counts the rooms named, scores the answer as before.
    """
    if sample.task not in STEP_TASKS:
        raise ValueError(f"answers with their step are defined for {', '.join(STEP_TASKS)}, not {sample.task}")
    if not sample.supporting:
        raise ValueError(f"the {sample.task} question {sample.question!r} has no supporting facts to find its "
                         "person in")
    kind, *args = _statement(sample.facts[sample.supporting[0]])
    expected = "move" if sample.task == "qa3" else ("take", "drop", "give")
    if kind not in expected:
        raise ValueError(f"the first supporting fact of {sample.task}'s {sample.question!r} is a {kind}, not the "
                         f"statement that names its person: {sample.facts[sample.supporting[0]]!r}")
    return BabiSample(sample.task, list(sample.facts), sample.question, f"{args[0]} {sample.answer}",
                      list(sample.supporting))
