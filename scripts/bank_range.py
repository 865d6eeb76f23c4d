"""How large the memory bank gets while a long BABILong prompt streams through an LM2 checkpoint: the largest
|M| entry of each memory block after the first, second, eighth and last segment.

    python scripts/bank_range.py runs/exp3/babilong-lm2/ckpt-000680 --lengths 1k,16k
"""

from __future__ import annotations

import argparse

import torch

from lm2.cache import stream
from lm2.data.babilong import build_samples
from lm2.eval.babilong import prompt_ids
from lm2.eval.common import load_model


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
        largest = []

        def record(cache, logits, fed, largest=largest):
            largest.append([round(float(layer.memory.memory.abs().max()), 3) for layer in cache.layers
                            if layer.memory is not None])

        stream(loaded.model, ids, args.segment_length, on_segment=record)
        picks = sorted({0, 1, min(7, len(largest) - 1), len(largest) - 1})
        print(f"{length}: {ids.shape[1]} tokens, {len(largest)} segments; max |M| per block after segment "
              + "; ".join(f"{i + 1}: {largest[i]}" for i in picks))


if __name__ == "__main__":
    main()
