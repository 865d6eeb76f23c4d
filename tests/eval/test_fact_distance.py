"""scripts/fact_distance.py: the distance from the answer's fact to the answer position, counted in tokens."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from helpers import char_tokenizer

from lm2.data.babilong import build_samples, finetune_prompt

ROOT = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("fact_distance", ROOT / "scripts" / "fact_distance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_distance_ends_exactly_at_the_last_supporting_fact():
    """With one token per character: the last `distance` characters of the prompt follow the fact, and the fact
    (the person's last move in qa1) ends right before them; it is the last time that sentence occurs."""
    distance = load_script().distance
    tokenizer = char_tokenizer()
    for sample in build_samples("qa1", "1k", 5, split="test", seed=0) + build_samples("qa1", "0k", 3, split="test"):
        d = distance(sample, tokenizer)
        prompt = finetune_prompt(sample)
        fact = sample.facts[max(sample.supporting)]
        assert prompt[: len(prompt) - d].endswith(fact)
        assert fact not in prompt[len(prompt) - d:]
        person = sample.question.split()[-1].rstrip("?")
        later = sample.facts[max(sample.supporting) + 1:]
        assert fact.startswith(person) and not any(f.startswith(person) for f in later)  # qa1: the person's last move
