"""Scoring BABILong answers: the published label rule, exact match, and the accuracy of a CSV of model outputs.

Two scoring rules: ``label_score`` (the published BABILong rule for generated text) and ``exact_match`` (of the
text generated after ``lm2.data.babilong.ANSWER_MARKER``). ``lm2 eval babilong`` scores with them, and so do
``lm2 score babilong`` (``lm2.data.commands``) and the trainer's validation, which is why they sit in ``lm2.data``:
``lm2.eval`` imports ``lm2.data``, so the data area may not import ``lm2.eval`` back (tests/test_imports.py).
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from lm2.data.babi import LABELS, check_task
from lm2.data.babilong import fact_spans, finetune_prompt
from lm2.data.tokenizers import ENDOFTEXT

_CUTS = (".", "<context>", "<example>")


def label_score(output: str, target: str, question: str, task: str) -> bool:
    """BABILong's rule for generated answers (BABI_SPEC.md, Scoring), kept exactly as published.

    The output is lower-cased and cut at its first ".", "<context>" or "<example>". The task's labels found
    in it as substrings, minus those that occur in the question, must be exactly the target; for a
    comma-separated target (qa8) every part must be found and as many labels as there are parts. Substring
    matching is deliberate and has two known effects: "not" counts as "no", and "none" (qa7) also contains
    "one", so under this rule an answer of "none" is never counted correct.
    """
    labels = {label.lower() for label in LABELS[check_task(task)]}
    text = output.lower()
    for cut in _CUTS:
        text = text.split(cut, 1)[0]
    question = question.lower()
    found = {label for label in labels if label in text} - {label for label in labels if label in question}
    target = target.strip().lower()
    if "," in target:
        parts = [p.strip() for p in target.split(",")]
        return all(p in found for p in parts) and len(found) == len(parts)
    return found == {target}


def _normalise(text: str) -> str:
    text = text.split(ENDOFTEXT, 1)[0].strip()
    text = text.split("\n", 1)[0].lower()
    text = " ".join(text.split()).rstrip(".").strip()
    return re.sub(r"\s*,\s*", ",", text)


def exact_match(output: str, target: str) -> bool:
    """Exact match of a generated answer (the text after ``ANSWER_MARKER``) with the target.

    Both sides are normalised: cut at ``<|endoftext|>`` and at the first line break (generation past the
    answer is not part of it), lower-cased, whitespace collapsed, trailing periods dropped, spaces around
    commas removed ("apple, milk" = "apple,milk"). Order still matters in lists, as in bAbI's answers.
    """
    return _normalise(output) == _normalise(target)


def read_predictions(path: str | os.PathLike, needed: Sequence[str] = ("target", "output", "question")
                     ) -> list[dict[str, str]]:
    """The rows of a CSV of model outputs (one dict per row, empty cells as ""), after checking that the
    columns in ``needed`` are there."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such CSV file: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, strict=True)  # strict: an unterminated quote is an error, not one huge cell
        try:
            missing = [c for c in needed if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
            return [{key: value or "" for key, value in row.items()} for row in reader]
        except csv.Error as err:
            raise ValueError(f"{path} is not a valid CSV (line {reader.line_num}: {err})") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text (byte {err.start}): give a CSV file") from None


def score_csv(path: str | os.PathLike, task: str, rule: str = "label") -> float:
    """Accuracy in percent of a CSV of model outputs with columns ``target``, ``output`` and (for the label
    rule) ``question``."""
    task = check_task(task)
    if rule not in ("label", "exact"):
        raise ValueError(f"unknown scoring rule {rule!r}: use 'label' or 'exact'")
    rows = read_predictions(path, ["target", "output"] + (["question"] if rule == "label" else []))
    if not rows:
        raise ValueError(f"{path}: no rows to score")
    scores = row_scores(rows, task, rule)
    return 100.0 * sum(scores) / len(scores)


def row_scores(rows: Sequence[dict], task: str, rule: str) -> list[bool]:
    """Which of ``read_predictions``' rows are right under ``rule`` (label or exact)."""
    if rule == "label":
        return [label_score(row["output"], row["target"], row["question"], task) for row in rows]
    return [exact_match(row["output"], row["target"]) for row in rows]


def scored_predictions(folder: str | os.PathLike, task: str, length: str) -> tuple[list[dict], list[bool]]:
    """The rows of an ``lm2 eval babilong`` folder's ``{task}_{length}.csv`` and which are right, under the scoring
    rule its summary.json names (exact if it names none)."""
    folder = Path(folder)
    summary = folder / "summary.json"
    if not summary.is_file():
        raise FileNotFoundError(f"{folder} has no summary.json: give the folder that `lm2 eval babilong --out` "
                                "wrote (it holds summary.json and one {task}_{length}.csv per task and length)")
    try:
        rule = json.loads(summary.read_text()).get("rule", "exact")
    except (json.JSONDecodeError, AttributeError):
        raise ValueError(f"{summary} is not a JSON object: rerun `lm2 eval babilong --out {folder}`") from None
    rows = read_predictions(folder / f"{task}_{length}.csv")
    return rows, row_scores(rows, task, rule)


# --- where the answer's fact lies: scripts/fact_distance.py and scripts/probe_binding.py --window

def fact_distance(sample, tokenizer, first: bool = False) -> int:
    """Tokens from the end of the last supporting fact to the end of the prompt (the answer position); with
    ``first``, from the end of the first supporting fact, the one furthest back (qa2-qa5 need several)."""
    if first and sample.supporting:
        spans = fact_spans(sample.context, sample.facts[: min(sample.supporting) + 1])  # repeats stay apart
        if None in spans:
            raise ValueError(f"a statement of the story of {sample.question!r} is not in its context, in order")
        end = spans[-1][1]
    else:
        fact = sample.facts[max(sample.supporting)] if sample.supporting else sample.facts[-1]
        end = sample.context.rindex(fact) + len(fact)  # the last occurrence: a later copy would be the later fact
    prompt = finetune_prompt(sample)
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    return count(prompt) - count(prompt[:end])


def band_names(edges: list[int]) -> list[str]:
    """Names of the distance bands that ``edges`` cut: '<= 128', '129-512', '> 512'."""
    names = [f"<= {edges[0]}"] + [f"{a + 1}-{b}" for a, b in zip(edges, edges[1:])]
    return names + [f"> {edges[-1]}"]


def split_by_distance(distances: list[int], edges: list[int]) -> list[list[int]]:
    """The sample indices in each band: distance <= edges[0], then (edges[k-1], edges[k]], then > edges[-1]."""
    groups = [[] for _ in range(len(edges) + 1)]
    for i, d in enumerate(distances):
        groups[sum(d > e for e in edges)].append(i)
    return groups
