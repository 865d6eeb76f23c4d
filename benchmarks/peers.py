"""Training-step throughput of lm2 against a peer memory model, side by side at the LM2 paper's training shape:
dim 256, 4 blocks, 2 x 2,048 tokens, forward + backward + AdamW, fp32, measured round-robin in one run.

Rows: transformers' LlamaForCausalLM (the reference every ratio is against), lm2 without memory, lm2 with memory
in every block (64 slots, U = 128 by default) and lucidrains' recurrent-memory-transformer-pytorch (RMT with
read/write memory tokens and XL memories, as shipped, sized to the same backbone: dim 256, 4 blocks, 8 heads of
32, feed-forward 688 wide, segments of --peer-segment tokens, --peer-memory-tokens memory tokens), once with its
default 4 residual streams (hyper-connections) and once with one ("1s", a plain residual like the others).

    pip install recurrent-memory-transformer-pytorch==0.7.0     # the peer; not a dependency of lm2
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/peers.py --threads 1
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/peers.py --device cuda --seq 2048 --batch 8

Prints each row's parameters, ms per step, tokens/s and tokens/s relative to HF Llama, FLOPs per step (torch's
FlopCounterMode: matmuls and attention) and their ratio to HF Llama's, and the FLOP rate; then the target of issue
"Memory at GPU speed": lm2 with memory / lucidrains RMT tokens/s >= 1.0. A model that does less work per token
(RMT attends within segments; 16 memory tokens per 512 cost little) can be faster at the same FLOP rate: the
FLOP columns tell speed of the code from amount of work.
"""

from __future__ import annotations

import argparse

import torch

from common import add_runtime_args, flops_of, hf_llama, interleaved_times, start
from train_throughput import HF, NO_MEMORY, lm2_name

from lm2 import LM2Config, LM2ForCausalLM

PEER = "lucidrains rmt"
PEER_ONE_STREAM = "lucidrains rmt 1s"


def lm2_config(args, memory: bool) -> LM2Config:
    extra = dict(memory_layers=args.layers, memory_slots=args.slots,
                 memory_update_interval=args.interval) if memory else dict(memory_layers=0)
    return LM2Config.from_preset("small", num_hidden_layers=args.layers, **extra)


def lm2_model(cfg: LM2Config, device: str):
    torch.manual_seed(0)
    return LM2ForCausalLM(cfg).to(device).train()


def lm2_step(model, ids):
    def loss():
        return model(input_ids=ids, labels=ids).loss
    return loss


def peer_step(cfg: LM2Config, args, streams: int):
    """lucidrains' RMT at the same width, depth, heads and feed-forward width (its GEGLU is int(dim * mult * 2/3)
    wide) with ``streams`` residual streams (4, its default, are hyper-connections; 1 is a plain residual), or
    None when the package is not installed."""
    try:
        from recurrent_memory_transformer_pytorch import RecurrentMemoryTransformer, RecurrentMemoryTransformerWrapper
    except ImportError:
        return None, None
    torch.manual_seed(0)
    heads = cfg.num_attention_heads
    core = RecurrentMemoryTransformer(
        cfg.hidden_size, num_tokens=cfg.vocab_size, depth=cfg.num_hidden_layers, heads=heads,
        dim_head=cfg.hidden_size // heads, ff_mult=cfg.intermediate_size * 1.5 / cfg.hidden_size,
        num_memory_tokens=args.peer_memory_tokens, seq_len=args.peer_segment, use_flash_attn=True,
        num_residual_streams=streams)
    model = RecurrentMemoryTransformerWrapper(core).to(args.device).train()

    def make(ids):
        def loss():
            # the wrapper drops the last token for labels: feed one more so it trains on the same T tokens
            extended = torch.cat([ids, ids[:, :1]], dim=1)
            return model(extended, return_loss=True)[0]
        return loss
    return model, make


def train_step(model, loss_fn):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn().backward()
        opt.step()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--interval", type=int, default=128, help="lm2's update interval U")
    parser.add_argument("--peer-segment", type=int, default=512)
    parser.add_argument("--peer-memory-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    add_runtime_args(parser)
    args = parser.parse_args()
    start(args)
    print(f"device {args.device}, fp32, batch {args.batch} x seq {args.seq}, dim 256, {args.layers} blocks, "
          f"forward+backward+AdamW, median of {args.repeats} interleaved runs; lm2: {args.slots} slots, "
          f"U = {args.interval}; peer: segments of {args.peer_segment}, {args.peer_memory_tokens} memory tokens\n")
    with_memory, without = lm2_config(args, True), lm2_config(args, False)
    torch.manual_seed(1)
    ids = torch.randint(0, without.vocab_size, (args.batch, args.seq), device=args.device)
    models = {HF: hf_llama(without, args.device).train(), NO_MEMORY: lm2_model(without, args.device),
              lm2_name(args.interval): lm2_model(with_memory, args.device)}
    fns = {name: train_step(m, lm2_step(m, ids)) for name, m in models.items()}
    peer, make = peer_step(without, args, streams=4)
    if peer is None:
        print("recurrent-memory-transformer-pytorch is not installed: the peer row is skipped "
              "(pip install recurrent-memory-transformer-pytorch==0.7.0)\n")
    else:
        models[PEER] = peer
        fns[PEER] = train_step(peer, make(ids))
        models[PEER_ONE_STREAM], make = peer_step(without, args, streams=1)
        fns[PEER_ONE_STREAM] = train_step(models[PEER_ONE_STREAM], make(ids))
    flops = {name: flops_of(fn) for name, fn in fns.items()}
    times = interleaved_times(fns, args.repeats, args.warmup, device=args.device)
    tokens = args.batch * args.seq
    header = (f"{'model':17} {'params':>8} {'ms/step':>9} {'tok/s':>8} {'tok/s vs HF':>11} {'GFLOP/step':>10} "
              f"{'FLOPs vs HF':>11} {'GFLOP/s':>8}")
    print(header)
    print("-" * len(header))
    for name, model in models.items():
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:17} {params / 1e6:7.2f}M {times[name] * 1e3:9.1f} {tokens / times[name]:8.0f} "
              f"{times[HF] / times[name]:11.3f} {flops[name] / 1e9:10.1f} {flops[name] / flops[HF]:11.3f} "
              f"{flops[name] / times[name] / 1e9:8.1f}")
    if peer is not None:
        print()
        for name in (PEER, PEER_ONE_STREAM):
            ratio = times[name] / times[lm2_name(args.interval)]
            verdict = "ok" if ratio >= 1.0 else f"MISSED by {1.0 - ratio:.3f}"
            print(f"lm2 with memory / {name} tokens/s = {ratio:.3f} (target >= 1.0): {verdict}")


if __name__ == "__main__":
    main()
