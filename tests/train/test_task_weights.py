"""data.task_weights: how often each bAbI task is drawn, and that leaving it empty keeps the uniform draw."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from helpers import char_tokenizer

from lm2.data.babilong import NoQuestionFits, story_finetune_example
from lm2.train import data
from lm2.train.config import from_dict


def drawn_tasks(monkeypatch, weights: dict, n: int = 400) -> list[str]:
    """The task of each of n training samples (steps 0.., 8 per step), read where the stream generates the story."""
    seen = []

    def generate(task, count, split, seed):
        seen.append(task)
        return [None] * count

    monkeypatch.setattr(data, "generate_stories", generate)
    monkeypatch.setattr(data, "story_finetune_example", lambda *args, **kwargs: ([1], [1]))
    cfg = from_dict({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa1", "qa2", "qa3"],
                              "task_weights": weights, "curriculum": [{"steps": 100, "lengths": ["0k"]}]},
                     "train": {"batch_size": 8}})
    stream = data.BabilongStream(cfg, SimpleNamespace(pad_token_id=0))
    for i in range(n):
        stream.example(i // 8, i % 8)
    return seen


def test_weights_set_how_often_each_task_is_drawn(monkeypatch):
    seen = drawn_tasks(monkeypatch, {"qa1": 0, "QA2": 3})  # qa3 left out: weight 1
    assert "qa1" not in seen
    share = seen.count("qa2") / len(seen)
    assert 0.65 < share < 0.85  # 3/4 expected; the binomial spread over 400 draws is about 0.02


def test_no_weights_draw_exactly_as_the_uniform_choice(monkeypatch):
    """Runs made before the option existed reproduce: the same rng call, so the same task for every sample."""
    seen = drawn_tasks(monkeypatch, {}, n=64)
    expected = [random.Random(f"babilong/0/{i // 8}/{i % 8}").choice(["qa1", "qa2", "qa3"]) for i in range(64)]
    assert seen == expected
    assert set(seen) == {"qa1", "qa2", "qa3"}


def test_equal_weights_draw_every_task_about_as_often(monkeypatch):
    seen = drawn_tasks(monkeypatch, {"qa1": 2, "qa2": 2, "qa3": 2}, n=600)
    assert all(150 < seen.count(task) < 250 for task in ("qa1", "qa2", "qa3"))


def test_a_task_weight_for_a_task_not_trained_is_refused():
    with pytest.raises(ValueError, match=r"data.task_weights names 'qa4'"):
        from_dict({"data": {"task": "babilong", "babi_tasks": ["qa1"], "task_weights": {"qa4": 1}}})


def test_the_model_card_says_how_the_tasks_were_drawn():
    from lm2.train.model_card import _data_line

    base = {"task": "babilong", "supervise": "story", "babi_tasks": ["qa1", "qa2"]}
    weighted = from_dict({"data": dict(base, task_weights={"qa1": 0.5, "qa2": 3})})
    assert "(qa1, qa2 drawn by weight qa1: 0.5, qa2: 3; bAbI facts" in _data_line(weighted)
    assert "(qa1, qa2; bAbI facts" in _data_line(from_dict({"data": base}))


def test_a_story_without_a_question_that_fits_is_drawn_again(monkeypatch):
    """At 400 tokens about half of qa3's stories hold no question whose statements fit: the stream draws again
    instead of stopping the run, and a story that fits is still the first one drawn (earlier runs reproduce)."""
    drawn, refused = [], []

    def generate(task, count, split, seed):
        drawn.append(seed)
        return real_generate(task, count, split=split, seed=seed)

    def example(story, length, *args, **kwargs):
        try:
            return story_finetune_example(story, length, *args, **kwargs)
        except NoQuestionFits:
            refused.append(len(drawn))
            raise

    real_generate = data.generate_stories
    monkeypatch.setattr(data, "generate_stories", generate)
    monkeypatch.setattr(data, "story_finetune_example", example)
    cfg = from_dict({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa3"],
                              "curriculum": [{"steps": 10, "lengths": ["400"]}]}, "train": {"batch_size": 8}})
    stream = data.BabilongStream(cfg, char_tokenizer())
    for i in range(16):
        before = len(drawn)
        ids, labels = stream.example(0, i)
        assert len(ids) == len(labels) and any(label != -100 for label in labels)
        first = random.Random(f"babilong/0/0/{i}")
        first.choice(["qa3"]), first.choice(["400"])
        assert drawn[before] == first.randrange(2**31)  # the first draw is the one a run without redraws made
    assert len(refused) >= 3 and len(drawn) == 16 + len(refused)

    monkeypatch.setattr(data, "STORY_DRAWS", 2)
    cfg = from_dict({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa3"],
                              "curriculum": [{"steps": 10, "lengths": ["200"]}]}, "train": {"batch_size": 8}})
    with pytest.raises(ValueError, match=r"none of 2 qa3 stories drawn has a question that fits length 200"):
        data.BabilongStream(cfg, char_tokenizer()).example(0, 0)
