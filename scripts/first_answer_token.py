"""What a BABILong checkpoint says first after "Answer:", by length, on train-split prompts of a seed that training
does not draw (so no test story is looked at): the share of prompts whose greedy first token is the end-of-text
token, and the answer's loss (nats, the first answer token) as median and mean.

    python scripts/first_answer_token.py runs/exp6/lm2-curr-story/ckpt-000100 --lengths 0k,1k --n 20
"""

from __future__ import annotations

import argparse
import statistics

import torch

from lm2.cache import stream
from lm2.data.babilong import build_samples
from lm2.eval.babilong import prompt_ids
from lm2.eval.common import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--lengths", default="0k,1k")
    parser.add_argument("--task", default="qa1")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--segment-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=987654, help="seed of the train-split samples")
    args = parser.parse_args()
    loaded = load_model(args.model)
    tok = loaded.tokenizer
    for length in args.lengths.split(","):
        losses, eos = [], 0
        for sample in build_samples(args.task, length, args.n, split="train", seed=args.seed):
            ids = torch.tensor([list(prompt_ids(sample, tok, "finetune", 0))])
            _, last = stream(loaded.model, ids, args.segment_length)  # stream runs without gradients
            answer = tok(" " + sample.target)["input_ids"][0]
            losses.append(-float(last[0].log_softmax(-1)[answer]))
            eos += int(last[0].argmax()) == tok.eos_token_id
        print(f"{length}: {eos}/{len(losses)} answers begin with end-of-text; answer loss median "
              f"{statistics.median(losses):.2f}, mean {statistics.fmean(losses):.2f} nats")


if __name__ == "__main__":
    main()
