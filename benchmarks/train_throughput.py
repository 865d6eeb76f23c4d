"""Training-step throughput (forward + backward) of LM2 with memory, LM2 without memory and transformers'
LlamaForCausalLM of the same size, measured side by side in one run.

    python benchmarks/train_throughput.py --presets tiny small --batch 4 --seq 256

Prints tokens/s, the time ratios, the FLOP ratio of memory (counted by torch's FlopCounterMode) and how the
time overhead of memory compares with its FLOP overhead (issue 2's target: at most 1.2x).
"""

from __future__ import annotations

import argparse

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from common import flops_of, interleaved_times, machine
from lm2 import LM2Config, LM2ForCausalLM


def build(preset: str, memory: bool, interval: int | None, device: str):
    overrides = {} if memory else {"memory_layers": 0}
    if interval:
        overrides["memory_update_interval"] = interval
    cfg = LM2Config.from_preset(preset, **overrides)
    torch.manual_seed(0)
    return LM2ForCausalLM(cfg).to(device).train(), cfg


def hf_llama(cfg: LM2Config, device: str):
    fields = {k: getattr(cfg, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "num_key_value_heads", "rms_norm_eps",
                                           "tie_word_embeddings", "max_position_embeddings")}
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**fields, attn_implementation="sdpa"))
    return model.to(device).train()


def step_fn(model, ids):
    def step():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--interval", type=int, default=None, help="override U (default: the preset's)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"batch {args.batch} x seq {args.seq}, fp32, forward+backward, median of {args.repeats} interleaved runs\n")
    header = f"{'preset':8} {'model':18} {'params':>9} {'tok/s':>9} {'GFLOP/step':>11} {'time ratio':>11}"
    print(header)
    print("-" * len(header))
    for preset in args.presets:
        lm2_mem, cfg = build(preset, True, args.interval, args.device)
        lm2_plain, _ = build(preset, False, None, args.device)
        llama = hf_llama(cfg, args.device)
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=args.device)
        models = {"lm2 (memory)": lm2_mem, "lm2 (no memory)": lm2_plain, "hf llama": llama}
        fns = {name: step_fn(m, ids) for name, m in models.items()}
        flops = {name: flops_of(fn) for name, fn in fns.items()}
        times = interleaved_times(fns, args.repeats, device=args.device)
        tokens = args.batch * args.seq
        for name, model in models.items():
            params = sum(p.numel() for p in model.parameters())
            print(f"{preset:8} {name:18} {params / 1e6:8.2f}M {tokens / times[name]:9.0f} "
                  f"{flops[name] / 1e9:11.3f} {times[name] / times['lm2 (no memory)']:11.3f}")
        ours_vs_hf = times["lm2 (no memory)"] / times["hf llama"]
        time_overhead = times["lm2 (memory)"] / times["lm2 (no memory)"]
        flop_overhead = flops["lm2 (memory)"] / flops["lm2 (no memory)"]
        print(f"  {preset}: ours without memory / HF Llama time = {ours_vs_hf:.3f} (target <= 1.05)")
        print(f"  {preset}: memory time overhead {time_overhead:.3f}x vs FLOP overhead {flop_overhead:.3f}x "
              f"-> ratio {time_overhead / flop_overhead:.3f} (target <= 1.2), U = {lm2_mem.config.memory_update_interval}\n")


if __name__ == "__main__":
    main()
