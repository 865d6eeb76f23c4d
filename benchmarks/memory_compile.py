"""The compiled memory fast path (``lm2.memory.set_compile``) against the eager memory and the memory-free model:
tokens/s of a training step (forward + backward + AdamW) at the small preset (T = 1024, U = 64) and at 40m
(T = 1024, U = 128, the preset's), and of greedy decoding with U = 16 (small preset, batch 1), measured side by
side (round-robin); the compile time (first compiled step minus an eager step) is printed once per model.

GPU NUMBERS WERE NOT MEASURED in the session that wrote this script (no GPU was at hand): it is the prepared GPU
run for issue 22, checked only on CPU with ``--device cpu --quick``. Its targets (issue 22) are GPU targets:

  * memory time overhead / memory FLOP overhead, compiled: <= 1.3 at small, <= 1.15 at 40m
  * decoding with U = 16, compiled memory / no-memory time: <= 1.5

    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/memory_compile.py --device cuda   # the GPU run, fp32
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/memory_compile.py --device cuda --dtype bf16 \
        --mode max-autotune-no-cudagraphs
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/memory_compile.py --device cpu --quick   # CPU smoke run

``--quick`` uses the tiny preset (T = 64, U = 16, batch 2; decoding a 16-token prompt + 16 new tokens with
U = 16). FLOPs are counted by torch's FlopCounterMode on the eager step (matmuls and attention only). A missed
target prints "MISSED by X". ``--mode`` is passed to torch.compile (e.g. ``reduce-overhead`` for CUDA graphs,
untested here).
"""

from __future__ import annotations

import argparse
import time

import torch

from common import add_runtime_args, flops_of, interleaved_times, start, sync
from generation import check
from train_throughput import autocast

from lm2 import LM2Config, LM2ForCausalLM
from lm2 import memory as memory_module
from lm2.generate import generate_tokens

NO_MEMORY, EAGER, COMPILED = "no memory", "memory eager", "memory compiled"


def build(preset: str, memory: bool, interval: int | None, device: str, train: bool):
    if memory:
        layers = LM2Config.from_preset(preset).num_hidden_layers
        overrides = {"memory_layers": layers}
        if interval is not None:
            overrides["memory_update_interval"] = interval
    else:
        overrides = {"memory_layers": 0}
    cfg = LM2Config.from_preset(preset, **overrides)
    torch.manual_seed(0)
    model = LM2ForCausalLM(cfg).to(device)
    return (model.train() if train else model.eval()), cfg


def with_compile(enabled: bool, fn):
    """``fn`` run with the fast path on or off (the switch is process-wide; the compiled function is kept)."""
    def run():
        memory_module.set_compile(enabled, **OPTIONS)
        try:
            return fn()
        finally:
            memory_module.set_compile(False, **OPTIONS)
    return run


def first_call_seconds(fn, device: str) -> float:
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def train_rows(preset: str, interval: int | None, batch: int, seq: int, target: float, args) -> None:
    mem, cfg = build(preset, True, interval, args.device, train=True)
    plain, _ = build(preset, False, None, args.device, train=True)
    torch.manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device=args.device)

    def step_fn(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast(args.device, args.dtype):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
        return step

    mem_step, plain_step = step_fn(mem), step_fn(plain)
    fns = {NO_MEMORY: plain_step, EAGER: with_compile(False, mem_step), COMPILED: with_compile(True, mem_step)}
    flops = {NO_MEMORY: flops_of(plain_step), EAGER: flops_of(with_compile(False, mem_step))}
    eager_first = first_call_seconds(fns[EAGER], args.device)
    compile_s = first_call_seconds(fns[COMPILED], args.device) - eager_first
    times = interleaved_times(fns, args.repeats, args.warmup, device=args.device)
    print(f"training step, preset {preset}, U = {cfg.memory_update_interval}, batch {batch}, T = {seq}, "
          f"{args.dtype}, median of {args.repeats} interleaved steps; compile (first compiled step - eager step) "
          f"{compile_s:.1f} s")
    header = f"  {'model':18} {'s/step':>9} {'tok/s':>10} {'time/no-mem':>12}"
    print(header)
    for name, t in times.items():
        print(f"  {name:18} {t:9.4f} {batch * seq / t:10.0f} {t / times[NO_MEMORY]:12.3f}")
    flop_overhead = flops[EAGER] / flops[NO_MEMORY]
    print(f"  memory FLOP overhead {flop_overhead:.3f}; compiled speed-up over eager "
          f"{times[EAGER] / times[COMPILED]:.3f}x")
    for name in (EAGER, COMPILED):
        ratio = times[name] / times[NO_MEMORY] / flop_overhead
        if name == COMPILED:
            check(f"[GPU target] {name}: time overhead / FLOP overhead", ratio, target)
        else:
            print(f"  {name}: time overhead / FLOP overhead = {ratio:.3f}")
    print()


def decode_rows(preset: str, interval: int, prompt_len: int, new: int, args) -> None:
    mem, cfg = build(preset, True, interval, args.device, train=False)
    plain, _ = build(preset, False, None, args.device, train=False)
    torch.manual_seed(1)
    prompt = torch.randint(0, cfg.vocab_size, (1, prompt_len), device=args.device)

    def gen(model):
        def run():
            with autocast(args.device, args.dtype):
                return list(generate_tokens(model, prompt, new))
        return run

    fns = {NO_MEMORY: gen(plain), EAGER: with_compile(False, gen(mem)), COMPILED: with_compile(True, gen(mem))}
    eager_first = first_call_seconds(fns[EAGER], args.device)
    compile_s = first_call_seconds(fns[COMPILED], args.device) - eager_first
    same = fns[EAGER]() == fns[COMPILED]()
    times = interleaved_times(fns, args.repeats, args.warmup, device=args.device)
    print(f"greedy decoding, preset {preset}, U = {interval}, batch 1, prompt {prompt_len} + {new} new tokens, "
          f"{args.dtype}, median of {args.repeats} interleaved runs; compile {compile_s:.1f} s; "
          f"compiled tokens {'equal' if same else 'DIFFER FROM'} eager")
    print(f"  {'model':18} {'s/run':>9} {'tok/s':>10} {'time/no-mem':>12}")
    for name, t in times.items():
        print(f"  {name:18} {t:9.4f} {new / t:10.1f} {t / times[NO_MEMORY]:12.3f}")
    print(f"  compiled speed-up over eager {times[EAGER] / times[COMPILED]:.3f}x")
    check(f"[GPU target] {COMPILED} / {NO_MEMORY} time", times[COMPILED] / times[NO_MEMORY], 1.5)
    print()


OPTIONS: dict = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny shapes (a CPU smoke run)")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mode", default=None, help="torch.compile mode")
    parser.add_argument("--dynamic", choices=["auto", "true", "false"], default="auto",
                        help="torch.compile dynamic= (auto: None, torch's automatic dynamic shapes)")
    parser.add_argument("--skip-decode", action="store_true")
    add_runtime_args(parser)
    args = parser.parse_args()
    OPTIONS.update({} if args.mode is None else {"mode": args.mode})
    if args.dynamic != "auto":
        OPTIONS["dynamic"] = args.dynamic == "true"
    start(args)
    print(f"device {args.device}, compile options {OPTIONS or 'default'}; GPU targets of issue 22 "
          f"(unmeasured until this runs on a GPU)\n")
    if args.quick:
        args.repeats = min(args.repeats, 3)
        train_rows("tiny", None, 2, 64, 1.3, args)
        if not args.skip_decode:
            decode_rows("tiny", 16, 16, 16, args)
        return
    train_rows("small", 64, args.batch, args.seq, 1.3, args)
    train_rows("40m", None, args.batch, args.seq, 1.15, args)
    if not args.skip_decode:
        decode_rows("small", 16, 128, 128, args)


if __name__ == "__main__":
    main()
