"""Training-step time (forward + backward over the trainer's segments) of the model a shipped training config
builds, three ways side by side in one run: as configured, with the memory's reads done chunk by chunk inside the
loop over chunks (``LM2Memory.read_after_writes`` off: the general path, which every write mode can take), and
the same backbone without memory. Only configs whose write leaves the read out of the write ("input" candidate,
"replace" update) have a batched-read row; for the others the first two rows are the same code.

    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/config_step.py --threads 1          # the lm2 demo's model
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/config_step.py --config recall-tiny --seq 512

Random token ids, labels on the last 5% of positions (as a BABILong answer sits at the end); the batch is what
one of the demo's 2 processes gets (4 of 8).
"""

from __future__ import annotations

import argparse

import torch

from common import add_runtime_args, interleaved_times, start

from lm2.train.config import load_config
from lm2.train.loop import SegmentedLM, build_model


def step_fn(runner: SegmentedLM, ids: torch.Tensor, labels: torch.Tensor, per_chunk: bool):
    memories = [m for m in runner.modules() if hasattr(m, "read_after_writes")]
    default = [m.read_after_writes for m in memories]

    def step():
        for m, flag in zip(memories, default):
            m.read_after_writes = flag and not per_chunk
        runner.zero_grad(set_to_none=True)
        loss, count = runner(ids, torch.ones_like(ids), labels)
        (loss / count).backward()
        for m, flag in zip(memories, default):
            m.read_after_writes = flag
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="babilong-qa1-demo", help="a shipped config name or a YAML path")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=1152, help="tokens per sample (a 1k BABILong sample: ~1,150)")
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    add_runtime_args(parser)
    args = parser.parse_args()
    start(args)
    torch.manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.batch, args.seq), device=args.device)
    labels = ids.clone()
    labels[:, : int(args.seq * 0.95)] = -100
    fns, models = {}, {}
    for kind in ("lm2", "vanilla"):
        cfg = load_config(args.config, ["--model.kind", kind])
        model = build_model(cfg, vocab_size=args.vocab).to(args.device)
        runner = SegmentedLM(model, cfg.data.segment_length)
        models[kind] = model
        if kind == "lm2":
            fns["memory, reads after the writes"] = step_fn(runner, ids, labels, per_chunk=False)
            fns["memory, reads in the loop"] = step_fn(runner, ids, labels, per_chunk=True)
        else:
            fns["no memory (vanilla)"] = step_fn(runner, ids, labels, per_chunk=False)
    print(f"config {args.config}: batch {args.batch} x {args.seq} tokens, forward + backward, "
          f"median of {args.repeats} interleaved steps, {args.device}, {torch.get_num_threads()} thread(s)")
    batched = any(getattr(m, "read_after_writes", False) for m in models["lm2"].modules())
    print(f"reads after the writes in this config: {'yes' if batched else 'no (the first two rows are one path)'}")
    times = interleaved_times(fns, args.repeats, args.warmup, args.device)
    base = times["no memory (vanilla)"]
    print(f"  {'model':34s} {'s/step':>8s} {'tok/s':>9s} {'time/no-mem':>12s}")
    for name, t in times.items():
        print(f"  {name:34s} {t:8.3f} {args.batch * args.seq / t:9.0f} {t / base:12.3f}")
    loop, fast = times["memory, reads in the loop"], times["memory, reads after the writes"]
    print(f"memory overhead (time - no-mem): in the loop {loop - base:.3f} s, after the writes {fast - base:.3f} s; "
          f"step speed-up {loop / fast:.3f}x")


if __name__ == "__main__":
    main()
