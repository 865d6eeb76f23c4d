"""Accuracy on the multi-segment associative-recall diagnostic (``lm2.data.recall``), by number of distractors.

Every answer is one token, so the score is the argmax of the model's next-token distribution at each queried key
(teacher forcing: earlier answers of the same sample are given, which cannot help, since every query asks a
different key). Streaming models are fed ``segment_length`` tokens per call with their state.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from lm2.cache import segments
from lm2.data.recall import TEST_SEED, RecallSpec, encode, make_samples
from lm2.eval.common import LoadedModel
from lm2.model_facts import is_streaming
from lm2.viz.recall import plot_recall


def parse_segments(spec: str | Sequence[int]) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32]: numbers of distractor segments, each >= 0."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        values = [int(x) for x in items]
    except (TypeError, ValueError):
        raise ValueError(f"--segments {spec!r} is invalid: give comma-separated non-negative integers, "
                         "e.g. 1,8,32") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--segments {spec!r} is invalid: give comma-separated non-negative integers, e.g. 1,8,32")
    return values


@torch.no_grad()
def answer_logits(model, input_ids: torch.Tensor, segment_length: int) -> torch.Tensor:
    """Logits (B, T, V) of every position; a streaming model gets ``segment_length`` tokens per call."""
    if not is_streaming(model):
        return model(input_ids).logits
    return torch.cat([out.logits for _, out in segments(model, input_ids, segment_length, logits_to_keep=0)], dim=1)


@torch.no_grad()
def recall_breakdown(model, tokenizer, samples: Sequence, segment_length: int, batch_size: int = 50) -> dict:
    """Where the answers go (all samples of one call share their length), as fractions of all queries:

    ``accuracy`` the queried value; ``other_pair`` the value of another pair of the same sample (the value was
    stored but not bound to its key: a memory that keeps the set of values and not which key each belongs to
    lands here); ``unstated`` anything else (nothing usable was stored). ``by_query``: accuracy of the first,
    second, ... query of each sample. A bag of values without keys shows as by_query ~ 1/P, 1/(P-1), ..., 1 with
    P pairs asked P queries: each earlier answer, visible to the window, rules one value out.
    """
    device = next(model.parameters()).device
    vocab = tokenizer.get_vocab()
    counts = {"accuracy": 0, "other_pair": 0, "unstated": 0}
    by_query: list[list[int]] = []  # [correct, asked] per query index
    for i in range(0, len(samples), batch_size):
        batch = samples[i : i + batch_size]
        ids = torch.tensor([encode(s, tokenizer)[0] for s in batch], device=device)
        predicted = answer_logits(model, ids, segment_length).argmax(-1).cpu()  # (B, T): position t predicts t + 1
        for row, sample in enumerate(batch):
            stated = {vocab[value] for _, value in sample.pairs}
            for q, pos in enumerate(sample.answers):
                guess, truth = int(predicted[row, pos - 1]), vocab[sample.words[pos]]
                kind = "accuracy" if guess == truth else "other_pair" if guess in stated else "unstated"
                counts[kind] += 1
                while len(by_query) <= q:
                    by_query.append([0, 0])
                by_query[q][0] += guess == truth
                by_query[q][1] += 1
    total = max(sum(counts.values()), 1)
    return {**{k: v / total for k, v in counts.items()}, "by_query": [c / n for c, n in by_query]}


def recall_accuracy(model, tokenizer, samples: Sequence, segment_length: int, batch_size: int = 50) -> float:
    """Fraction of queried values predicted exactly (all samples of one call share their length)."""
    return recall_breakdown(model, tokenizer, samples, segment_length, batch_size)["accuracy"]


def recall_spec_of(path: str | os.PathLike):
    """The RecallSpec a checkpoint was trained with (its saved training config's ``data.recall``)."""
    file = Path(path) / "train_config.yaml"  # lm2.train.checkpoint.CONFIG_FILE (eval does not import train)
    if not file.is_file():
        raise ValueError(f"{path} has no {file.name}: `lm2 eval recall` needs a checkpoint that `lm2 train` wrote "
                         "with data.task=recall (e.g. configs/recall-tiny.yaml)")
    data = (yaml.safe_load(file.read_text()) or {}).get("data", {})
    if data.get("task") != "recall":
        raise ValueError(f"{path} was trained with data.task={data.get('task')!r}, not recall: `lm2 eval recall` "
                         "scores models trained on the recall diagnostic (configs/recall-tiny.yaml)")
    return RecallSpec(**data.get("recall", {}))


def evaluate_recall(loaded: LoadedModel, segments: Sequence[int], n: int = 200, seed: int | None = None,
                    batch_size: int = 50, segment_length: int | None = None,
                    out_dir: str | os.PathLike | None = None, progress: bool = True, spec=None) -> dict:
    """Accuracy (%) per number of distractor segments on ``n`` test samples each (``lm2.data.recall.TEST_SEED``
    unless ``seed``); written to ``out_dir/recall.json`` and plotted in ``out_dir/recall.png`` if given.
    ``segment_length`` (tokens per streaming call) defaults to the diagnostic's segment. ``spec`` (a RecallSpec)
    defaults to the one the checkpoint was trained with."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--n {n!r} is invalid: it must be a positive integer")
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size} is invalid: it must be a positive integer")
    spec = spec or recall_spec_of(loaded.path)
    seed = TEST_SEED if seed is None else seed
    segment_length = segment_length or spec.segment_length
    accuracy, errors = {}, {}
    for d in tqdm(segments, desc="recall", unit="length", disable=not progress):
        samples = make_samples(spec, d, n, seed=seed)
        found = recall_breakdown(loaded.model, loaded.tokenizer, samples, segment_length, batch_size)
        accuracy[str(d)] = 100.0 * found["accuracy"]
        errors[str(d)] = {"other_pair": 100.0 * found["other_pair"], "unstated": 100.0 * found["unstated"],
                          "by_query": [100.0 * a for a in found["by_query"]]}
    summary = {"model": str(loaded.path), "kind": loaded.kind, "n": n, "seed": seed, "segments": list(segments),
               "pairs": spec.pairs, "queries": spec.queries, "gap": spec.gap, "query_gap": spec.query_gap,
               "chance": 100.0 / spec.num_values,
               "accuracy": accuracy, "errors": errors}
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "recall.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_recall({loaded.name: summary}, Path(out_dir) / "recall.png")
    return summary
