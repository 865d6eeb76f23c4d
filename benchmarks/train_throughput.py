"""Training-step throughput (forward + backward + AdamW step) of LM2 with memory in every block (one row per
update interval U), LM2 without memory, transformers' LlamaForCausalLM of the same size and the RMT baseline on
the same backbone, measured side by side (round-robin) in one run, together with the machine's fp32 (or bf16)
matmul rate, so that each row's model FLOP utilisation (MFU) comes from the same minutes of the same machine.

    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/train_throughput.py                      # tiny small 40m
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/train_throughput.py --presets small --batch 4 --seq 256 \
        --intervals 128 1 --repeats 5 --device cpu --dtype fp32
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/train_throughput.py --device cuda --dtype bf16 --batch 8 \
        --seq 1024

FLOPs per step are counted by torch's FlopCounterMode (matmuls and attention only, the usual MFU convention; the
optimizer's elementwise work is timed but not counted). The matmul rate is the median time of a square
``torch.mm`` (2048 on CPU, 8192 on CUDA, in the step's dtype) timed in the same round-robin as the models.
MFU = (FLOPs per step / step time) / matmul rate.

Targets checked (a missed one prints "MISSED by X", X = how far the value is from the target):
  * ours without memory / HF Llama time                       <= 1.0
  * memory time overhead / memory FLOP overhead (each U)       <= 1.15
  * MFU of LM2 (first U) and LM2 without memory, small preset  >= 50%
  * time of U=1 / time of U=128                                <= 3
"""

from __future__ import annotations

import argparse
import contextlib

import torch

from common import add_runtime_args, flops_of, hf_llama, interleaved_times, start

from lm2 import LM2Config, LM2ForCausalLM
from lm2.rmt import RMTForCausalLM

NO_MEMORY = "lm2 no memory"
HF = "hf llama"
RMT = "rmt"
MATMUL = "matmul"


def lm2_name(interval: int) -> str:
    return f"lm2 U={interval}"


def build_lm2(preset: str, interval: int | None, device: str):
    """LM2 with memory in every block and update interval ``interval``; None = no memory."""
    if interval is None:
        cfg = LM2Config.from_preset(preset, memory_layers=0)
    else:
        base = LM2Config.from_preset(preset)
        cfg = LM2Config.from_preset(preset, memory_layers=base.num_hidden_layers, memory_update_interval=interval)
    torch.manual_seed(0)
    return LM2ForCausalLM(cfg).to(device).train(), cfg


def rmt_model(cfg: LM2Config, segment: int, memory_tokens: int, device: str):
    torch.manual_seed(0)
    model = RMTForCausalLM(cfg, rmt_memory_tokens=memory_tokens, rmt_segment_length=segment)
    return model.to(device).train()


def autocast(device: str, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_fn(model, ids, device: str, dtype: str):
    """One training step: forward, backward and the AdamW update."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
    return step


def matmul_fn(device: str, dtype: str):
    n = 8192 if device.startswith("cuda") else 2048
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    return (lambda: torch.mm(a, b)), 2 * n**3, n


def check(label: str, value: float, target: float, higher_is_better: bool = False, unit: str = "") -> None:
    ok = value >= target if higher_is_better else value <= target
    op = ">=" if higher_is_better else "<="
    verdict = "ok" if ok else f"MISSED by {abs(value - target):.3f}{unit}"
    print(f"  {label} = {value:.3f}{unit} (target {op} {target}{unit}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "40m"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--intervals", type=int, nargs="+", default=[128, 1],
                        help="update intervals U of the LM2 rows (memory in every block)")
    parser.add_argument("--rmt-segment", type=int, default=None, help="RMT segment length (default: --seq)")
    parser.add_argument("--rmt-memory-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                        help="bf16 = autocast to bfloat16 (meant for cuda; also works on cpu)")
    add_runtime_args(parser)
    args = parser.parse_args()
    start(args)
    rmt_segment = args.rmt_segment or args.seq
    mm, mm_flops, mm_n = matmul_fn(args.device, args.dtype)
    print(f"device {args.device}, {args.dtype}, batch {args.batch} x seq {args.seq}, forward+backward+AdamW, "
          f"median of {args.repeats} interleaved runs; RMT segment {rmt_segment}, {args.rmt_memory_tokens} memory "
          f"tokens; matmul reference {mm_n}x{mm_n} {args.dtype}\n")
    header = (f"{'preset':7} {'model':14} {'params':>9} {'ms/step':>9} {'tok/s':>9} {'GFLOP/step':>11} "
              f"{'GFLOP/s':>8} {'MFU':>6} {'time/no-mem':>11}")
    for preset in args.presets:
        models = {}
        for interval in args.intervals:
            models[lm2_name(interval)], _ = build_lm2(preset, interval, args.device)
        models[NO_MEMORY], cfg = build_lm2(preset, None, args.device)
        models[HF] = hf_llama(cfg, args.device).train()
        models[RMT] = rmt_model(cfg, rmt_segment, args.rmt_memory_tokens, args.device)
        torch.manual_seed(1)
        ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), device=args.device)
        fns = {name: step_fn(m, ids, args.device, args.dtype) for name, m in models.items()}
        flops = {name: flops_of(fn) for name, fn in fns.items()}
        times = interleaved_times({**fns, MATMUL: mm}, args.repeats, args.warmup, device=args.device)
        rate = mm_flops / times[MATMUL]
        print(f"{preset}: matmul rate {rate / 1e9:.1f} GFLOP/s ({times[MATMUL] * 1e3:.1f} ms per {mm_n}^3 mm)")
        print(header)
        print("-" * len(header))
        tokens = args.batch * args.seq
        mfu = {}
        for name, model in models.items():
            params = sum(p.numel() for p in model.parameters())
            achieved = flops[name] / times[name]
            mfu[name] = achieved / rate
            print(f"{preset:7} {name:14} {params / 1e6:8.2f}M {times[name] * 1e3:9.1f} {tokens / times[name]:9.0f} "
                  f"{flops[name] / 1e9:11.3f} {achieved / 1e9:8.1f} {mfu[name]:6.1%} "
                  f"{times[name] / times[NO_MEMORY]:11.3f}")
        print(f"checks ({preset}):")
        check("ours without memory / HF Llama time", times[NO_MEMORY] / times[HF], 1.0)
        for interval in args.intervals:
            name = lm2_name(interval)
            time_overhead = times[name] / times[NO_MEMORY]
            flop_overhead = flops[name] / flops[NO_MEMORY]
            check(f"U={interval}: memory time overhead {time_overhead:.3f}x / FLOP overhead {flop_overhead:.3f}x",
                  time_overhead / flop_overhead, 1.15)
        if 1 in args.intervals and 128 in args.intervals:
            check("time U=1 / time U=128", times[lm2_name(1)] / times[lm2_name(128)], 3.0)
        if preset == "small":
            for name in (lm2_name(args.intervals[0]), NO_MEMORY):
                check(f"MFU of {name} (%)", 100 * mfu[name], 50.0, higher_is_better=True)
        print(f"  for reference: RMT / ours without memory time = {times[RMT] / times[NO_MEMORY]:.3f}, "
              f"HF MFU {mfu[HF]:.1%}\n")


if __name__ == "__main__":
    main()
