"""The bAbI vocabulary and data types: task names, actors, rooms, objects, verbs, answer labels, and the story,
line and sample records that the generator, the file format and BABILong share."""

from __future__ import annotations

from dataclasses import dataclass, field

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
