"""How large the memory bank gets while a long BABILong prompt streams through an LM2 checkpoint, and how alike its
slots become: the largest |M| entry of each memory block, and the mean cosine similarity between two different slots
of it (0 for slots pointing apart, 1 when every slot holds the same direction and the bank can tell no two facts
apart), after the first, second, eighth, 32nd, 92nd, 200th and last segment.

    python scripts/bank_range.py runs/exp3/babilong-lm2/ckpt-000680 --lengths 1k,16k
"""

from __future__ import annotations

import argparse

import torch

from lm2.cache import stream
from lm2.data.babilong import build_samples
from lm2.eval.babilong import prompt_ids
from lm2.eval.common import load_model


def slot_similarity(memory: torch.Tensor) -> float:
    """The mean cosine similarity over the ordered pairs of different slots of one bank (slots x slot width)."""
    unit = torch.nn.functional.normalize(memory.reshape(memory.shape[0], -1).float(), dim=-1)
    slots = unit.shape[0]
    if slots < 2:
        raise ValueError(f"slot similarity needs a bank of at least 2 slots; this one has {slots}")
    cosines = unit @ unit.T
    return float((cosines.sum() - cosines.diagonal().sum()) / (slots * (slots - 1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--lengths", default="1k,16k")
    parser.add_argument("--task", default="qa1")
    parser.add_argument("--segment-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0, help="seed of the test sample")
    args = parser.parse_args()
    loaded = load_model(args.model)
    for length in args.lengths.split(","):
        sample = build_samples(args.task, length, 1, split="test", seed=args.seed)[0]
        ids = torch.tensor([list(prompt_ids(sample, loaded.tokenizer, "finetune", 0))])
        largest, alike = [], []

        def record(cache, logits, fed, largest=largest, alike=alike):
            banks = [layer.memory.memory[0] for layer in cache.layers if layer.memory is not None]
            largest.append([round(float(bank.abs().max()), 3) for bank in banks])
            alike.append([round(slot_similarity(bank), 3) for bank in banks])

        stream(loaded.model, ids, args.segment_length, on_segment=record)
        picks = sorted({min(i, len(largest) - 1) for i in (0, 1, 7, 31, 91, 199)} | {len(largest) - 1})
        print(f"{length}: {ids.shape[1]} tokens, {len(largest)} segments; max |M| per block after segment "
              + "; ".join(f"{i + 1}: {largest[i]}" for i in picks))
        print(f"{length}: mean cosine between two slots per block after segment "
              + "; ".join(f"{i + 1}: {alike[i]}" for i in picks))


if __name__ == "__main__":
    main()
