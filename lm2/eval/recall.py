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

from lm2.eval.common import LoadedModel, is_streaming


def parse_segments(spec: str | Sequence[int]) -> list[int]:
    """``"1,8,32"`` -> [1, 8, 32]: numbers of distractor segments, each >= 0."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        values = [int(x) for x in items]
    except (TypeError, ValueError):
        raise ValueError(f"--segments {spec!r} is invalid: give comma-separated non-negative integers, e.g. 1,8,32") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--segments {spec!r} is invalid: give comma-separated non-negative integers, e.g. 1,8,32")
    return values


@torch.no_grad()
def answer_logits(model, input_ids: torch.Tensor, segment_length: int) -> torch.Tensor:
    """Logits (B, T, V) of every position; a streaming model gets ``segment_length`` tokens per call."""
    if not is_streaming(model):
        return model(input_ids).logits
    cache, parts = None, []
    for start in range(0, input_ids.shape[1], segment_length):
        out = model(input_ids[:, start : start + segment_length], cache=cache, use_cache=True)
        cache = out.past_key_values
        parts.append(out.logits)
    return torch.cat(parts, dim=1)


@torch.no_grad()
def recall_accuracy(model, tokenizer, samples: Sequence, segment_length: int, batch_size: int = 50) -> float:
    """Fraction of queried values predicted exactly (all samples of one call share their length)."""
    from lm2.data.recall import encode

    device = next(model.parameters()).device
    correct = total = 0
    for i in range(0, len(samples), batch_size):
        pairs = [encode(s, tokenizer) for s in samples[i : i + batch_size]]
        ids = torch.tensor([p[0] for p in pairs], device=device)
        labels = torch.tensor([p[1] for p in pairs], device=device)
        logits = answer_logits(model, ids, segment_length)[:, :-1]  # position t predicts token t + 1
        target = labels[:, 1:]
        asked = target != -100
        correct += int((logits.argmax(-1)[asked] == target[asked]).sum())
        total += int(asked.sum())
    return correct / max(total, 1)


def recall_spec_of(path: str | os.PathLike):
    """The RecallSpec a checkpoint was trained with (its saved training config's ``data.recall``)."""
    import yaml

    from lm2.data.recall import RecallSpec
    from lm2.train.checkpoint import CONFIG_FILE

    file = Path(path) / CONFIG_FILE
    if not file.is_file():
        raise ValueError(f"{path} has no {CONFIG_FILE}: `lm2 eval recall` needs a checkpoint that `lm2 train` wrote "
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
    unless ``seed``); written to ``out_dir/recall.json`` and plotted in ``out_dir/recall.png`` if given. ``segment_length`` (tokens per streaming call)
    defaults to the diagnostic's segment. ``spec`` (a RecallSpec) defaults to the one the checkpoint was trained
    with."""
    from tqdm import tqdm

    from lm2.data.recall import TEST_SEED, make_samples

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--n {n!r} is invalid: it must be a positive integer")
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size} is invalid: it must be a positive integer")
    spec = spec or recall_spec_of(loaded.path)
    seed = TEST_SEED if seed is None else seed
    segment_length = segment_length or spec.segment_length
    accuracy = {}
    for d in tqdm(segments, desc="recall", unit="length", disable=not progress):
        samples = make_samples(spec, d, n, seed=seed)
        accuracy[str(d)] = 100.0 * recall_accuracy(loaded.model, loaded.tokenizer, samples, segment_length,
                                                   batch_size)
    summary = {"model": str(loaded.path), "kind": loaded.kind, "n": n, "seed": seed, "segments": list(segments),
               "pairs": spec.pairs, "queries": spec.queries, "chance": 100.0 / spec.num_values,
               "accuracy": accuracy}
    if out_dir is not None:
        from lm2.viz.recall import plot_recall

        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "recall.json").write_text(json.dumps(summary, indent=2) + "\n")
        plot_recall({loaded.name: summary}, Path(out_dir) / "recall.png")
    return summary
