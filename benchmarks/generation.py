"""Greedy generation with a cache, batch 1: tokens per second of LM2 with test-time memory updates every token
(U=1), LM2 with a coarser update interval, LM2 without memory and transformers' LlamaForCausalLM.generate() of
the same size, measured side by side (round-robin) on the same random prompt.

    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/generation.py                       # small preset
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/generation.py --preset small --prompt 128 --new 128 \
        --interval 16 --repeats 5 --device cpu

LM2 rows use ``lm2.generate.generate_tokens`` (prefill, then one token per forward with the streaming state);
"lm2 no memory generate()" is the same memory-free model through HF's GenerationMixin, for a like-for-like
comparison with HF Llama's generate(). Time includes the prefill of the prompt; tokens/s = new tokens / time.

Target (a missed one prints "MISSED by X"): ours without memory / HF Llama time <= 1.0 (both through
generate_tokens and through generate()).
"""

from __future__ import annotations

import argparse

import torch

from common import add_runtime_args, hf_llama, interleaved_times, start

from lm2 import LM2Config, LM2ForCausalLM
from lm2.generate import generate_tokens


def build_lm2(preset: str, memory: bool, device: str):
    overrides = {} if memory else {"memory_layers": 0}
    cfg = LM2Config.from_preset(preset, **overrides)
    torch.manual_seed(0)
    return LM2ForCausalLM(cfg).to(device).eval(), cfg


def check(text: str, value: float, target: float) -> None:
    verdict = "ok" if value <= target else f"MISSED by {value - target:.3f}"
    print(f"  {text} = {value:.3f} (target <= {target}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--new", type=int, default=128, help="new tokens")
    parser.add_argument("--interval", type=int, default=16, help="the U > 1 row's update interval")
    parser.add_argument("--repeats", type=int, default=5)
    add_runtime_args(parser)
    args = parser.parse_args()
    start(args)
    print(f"device {args.device}, preset {args.preset}, fp32, batch 1, greedy, prompt {args.prompt} + {args.new} new "
          f"tokens, median of {args.repeats} interleaved runs\n")

    lm2_mem, cfg = build_lm2(args.preset, True, args.device)
    lm2_plain, _ = build_lm2(args.preset, False, args.device)
    llama = hf_llama(cfg, args.device).eval()
    torch.manual_seed(1)
    prompt = torch.randint(0, cfg.vocab_size, (1, args.prompt), device=args.device)
    mask = torch.ones_like(prompt)
    produced = {}

    def ours(model, interval):
        def run():
            out = list(generate_tokens(model, prompt, args.new, memory_update_interval=interval))
            produced[id(run)] = len(out)
        return run

    def via_generate(model):
        @torch.no_grad()
        def run():
            out = model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=args.new,
                                 min_new_tokens=args.new, do_sample=False, pad_token_id=0)
            produced[id(run)] = out.shape[1] - args.prompt
        return run

    fns = {
        "lm2 U=1": ours(lm2_mem, 1),
        f"lm2 U={args.interval}": ours(lm2_mem, args.interval),
        "lm2 no memory": ours(lm2_plain, None),
        "lm2 no memory generate()": via_generate(lm2_plain),
        "hf llama generate()": via_generate(llama),
    }
    times = interleaved_times(fns, args.repeats, args.warmup, device=args.device)
    header = f"{'model':26} {'params':>9} {'new tokens':>10} {'s/run':>8} {'tok/s':>8} {'time/HF':>8}"
    print(header)
    print("-" * len(header))
    params = {"lm2 U=1": lm2_mem, f"lm2 U={args.interval}": lm2_mem, "lm2 no memory": lm2_plain,
              "lm2 no memory generate()": lm2_plain, "hf llama generate()": llama}
    hf = times["hf llama generate()"]
    for name, fn in fns.items():
        n = produced[id(fn)]
        p = sum(x.numel() for x in params[name].parameters())
        print(f"{name:26} {p / 1e6:8.2f}M {n:10d} {times[name]:8.3f} {n / times[name]:8.1f} {times[name] / hf:8.3f}")
    print("\nchecks:")
    check("ours without memory (generate_tokens) / HF generate() time", times["lm2 no memory"] / hf, 1.0)
    check("ours without memory (generate()) / HF generate() time", times["lm2 no memory generate()"] / hf, 1.0)
    print(f"  for reference: U=1 / U={args.interval} time = "
          f"{times['lm2 U=1'] / times[f'lm2 U={args.interval}']:.3f}, U=1 / no memory = "
          f"{times['lm2 U=1'] / times['lm2 no memory']:.3f}")


if __name__ == "__main__":
    main()
