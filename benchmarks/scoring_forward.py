"""What adding memory costs a pretrained model at scoring time (a forward pass, no cache, as MMLU's log-likelihoods
use): SmolLM2-135M-Instruct as transformers' LlamaForCausalLM, against the same weights as LM2 with zero-initialised
memory in every block (experiment 4's shape: 128 slots, 9 heads) at two update intervals, and LM2 without memory.
Measured side by side (round-robin) on the same random batch; seconds per forward and the ratio to the Llama.

    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/scoring_forward.py --batch 8 --seq 256 --repeats 3 --threads 1

Needs the SmolLM2 wheel (converted once into lm2's cache, as `lm2 eval mmlu --model smollm2-135m` does).
"""

from __future__ import annotations

import argparse

import torch

from common import add_runtime_args, interleaved_times, start

from lm2 import LM2ForCausalLM
from lm2.pretrained import resolve_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slots", type=int, default=128)
    parser.add_argument("--heads", type=int, default=9)
    parser.add_argument("--intervals", type=int, nargs="+", default=[64, 256])
    add_runtime_args(parser)
    args = parser.parse_args()
    start(args)
    from transformers import LlamaForCausalLM

    folder = resolve_pretrained("smollm2-135m")
    models = {"HF Llama": LlamaForCausalLM.from_pretrained(folder, attn_implementation="sdpa")}
    models["lm2 no memory"] = LM2ForCausalLM.from_llama(folder, memory_layers=0)
    layers = models["HF Llama"].config.num_hidden_layers
    for interval in args.intervals:
        models[f"lm2 memory U={interval}"] = LM2ForCausalLM.from_llama(
            folder, memory_layers=layers, memory_slots=args.slots, memory_heads=args.heads,
            memory_update_interval=interval)
    for model in models.values():
        model.to(args.device).eval()
    ids = torch.randint(0, models["HF Llama"].config.vocab_size, (args.batch, args.seq), device=args.device)

    def forward(model):
        def fn():
            with torch.no_grad():
                model(ids, logits_to_keep=1)
        return fn

    times = interleaved_times({name: forward(m) for name, m in models.items()}, args.repeats, args.warmup,
                              args.device)
    print(f"forward of {args.batch} x {args.seq} tokens, logits of the last position only; median of "
          f"{args.repeats}")
    base = times["HF Llama"]
    for name, seconds in times.items():
        params = sum(p.numel() for p in models[name].parameters()) / 1e6
        print(f"{name:<22} {params:7.1f}M parameters  {seconds:8.3f} s  x{seconds / base:.2f} of HF Llama")


if __name__ == "__main__":
    main()
