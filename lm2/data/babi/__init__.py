"""bAbI tasks qa1-qa10: a seeded generator, and the reader/writer of the bAbI text format.

No bAbI data ships offline, so lm2 makes its own. The generator simulates the same small world as bAbI
(four actors, six rooms, three objects) and follows the project's bAbI spec (BABI_SPEC.md), measured on the
public v1.2 en-10k files: the same sentences and verbs, the same action rules, story sizes, statement mix,
question forms and answer shares, and supporting-fact ids in the same convention. The aim is that a model
trained on these stories scores the same on the real test files as on our own test split.
tests/data/babi_check.py re-derives every answer from the text alone.

One job per module:

* ``common``: the vocabulary (tasks, actors, rooms, objects, verbs, answer labels) and the data types;
* ``world``: the hidden truth of one story and what its text has established, and the narrated actions;
* ``tasks``: the ten story makers and the weights tuned to the spec;
* ``streams``: the train/test split, the reproducible story streams, ``generate_stories``/``generate_samples``;
* ``questions``: every question a qa1-qa5 story point answers (``every_question``, for training);
* ``textformat``: the bAbI text format (``read_babi``, ``write_babi``, ``format_babi``).

Real bAbI files load with `read_babi`, so everything downstream works on the published data too.
"""

from lm2.data.babi.common import (
    ACTORS,
    COUNT_WORDS,
    DROP_VERBS,
    GIVE_VERBS,
    LABELS,
    MOVE_VERBS,
    OBJECTS,
    QA5_ACTORS,
    QA10_ACTORS,
    QA10_ROOMS,
    ROOMS,
    SPLITS,
    TAKE_VERBS,
    TASK_NAMES,
    TASKS,
    TEST_FRACTION,
    BabiLine,
    BabiSample,
    Story,
    check_task,
)
from lm2.data.babi.streams import generate_samples, generate_stories, story_samples, story_split
from lm2.data.babi.textformat import format_babi, read_babi, write_babi

__all__ = [
    "ACTORS", "COUNT_WORDS", "DROP_VERBS", "GIVE_VERBS", "LABELS", "MOVE_VERBS", "OBJECTS", "QA5_ACTORS", "QA10_ACTORS",
    "QA10_ROOMS", "ROOMS", "SPLITS", "TAKE_VERBS", "TASK_NAMES", "TASKS", "TEST_FRACTION", "BabiLine", "BabiSample",
    "Story", "check_task", "format_babi", "generate_samples", "generate_stories", "read_babi", "story_samples",
    "story_split", "write_babi",
]
