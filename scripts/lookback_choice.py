"""Which token a `lookback` write address chooses, on the recall diagnostic.

For each memory block of a model trained with ``memory_write_address: lookback``, prints the learned preference
per distance (b_1 .. b_L) and the mean weight a value token puts on its own key (the token it must be written
under) over the first segment of ``--n`` samples. A model that has not learned the choice puts on the key what the
distance preference alone gives it; one that has, close to 1.

    python scripts/lookback_choice.py runs/recall-gap-tiny/ckpt-001200 [--gap 2] [--n 50] [--fresh]

``--fresh`` scores a freshly initialised model of the same config (the starting point). Samples come from a
seed of their own (not the test seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import random

import torch

from lm2 import LM2ForCausalLM
from lm2.data.recall import RecallSpec, build_tokenizer, encode, make_sample
from lm2.eval.recall import recall_spec_of
from lm2.memory import lookback_address

PROBE_SEED = "lookback-choice"


def own_key_weight(model, spec: RecallSpec, n: int, seed: str = PROBE_SEED) -> dict[int, float]:
    """{block index: mean lookback weight of a value token on its own key} over the first segment of n samples."""
    tokenizer = build_tokenizer(spec)
    rng = random.Random(seed)
    states: dict[int, torch.Tensor] = {}
    blocks = {i: layer.memory for i, layer in enumerate(model.model.layers) if layer.memory is not None}
    for mem in blocks.values():
        if mem.write_address != "lookback":
            raise SystemExit(f"the model's write address is {mem.write_address!r}, not lookback")
    hooks = [layer.memory.register_forward_hook(lambda mod, args, out, i=i: states.__setitem__(i, args[0]))
             for i, layer in enumerate(model.model.layers) if layer.memory is not None]
    totals = {i: [0.0, 0] for i in blocks}
    try:
        for _ in range(n):
            sample = make_sample(spec, 1, rng)
            ids = encode(sample, tokenizer)[0][: spec.segment_length]
            words = sample.words[: spec.segment_length]
            with torch.no_grad():
                model(torch.tensor([ids]))
                for i, mem in blocks.items():
                    x = states[i]
                    choice = lookback_address(mem.q_proj(x), x, None, None, None, mem.q_proj, mem.lookback_score,
                                              mem.lookback_bias)[3][0]  # (T, L): weight on the token l back
                    for pos, word in enumerate(words):
                        if not word.startswith("v"):
                            continue
                        lag = pos - max(j for j in range(pos) if words[j].startswith("k"))  # its own key
                        totals[i][0] += float(choice[pos, lag - 1]) if lag <= choice.shape[1] else 0.0
                        totals[i][1] += 1
    finally:
        for hook in hooks:
            hook.remove()
    return {i: s / max(c, 1) for i, (s, c) in totals.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint trained on the recall diagnostic with the lookback address")
    parser.add_argument("--gap", type=int, default=None, help="filler words between key and value, 0 up to this "
                        "(default: the model's data.recall.gap)")
    parser.add_argument("--n", type=int, default=50, help="samples (4 values each)")
    parser.add_argument("--fresh", action="store_true", help="a freshly initialised model of the same config")
    args = parser.parse_args(argv)
    spec = recall_spec_of(args.model)
    if args.gap is not None:
        spec = dataclasses.replace(spec, gap=args.gap)
    model = LM2ForCausalLM.from_pretrained(args.model).eval()
    if args.fresh:
        torch.manual_seed(0)
        model = LM2ForCausalLM(model.config).eval()
    for i, weight in own_key_weight(model, spec, args.n).items():
        bias = model.model.layers[i].memory.lookback_bias.detach()
        print(f"block {i}: distance preference " + " ".join(f"{float(b):.2f}" for b in bias)
              + f"; weight on the value's own key {weight:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
