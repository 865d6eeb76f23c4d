"""Top-level commands about the model itself: `lm2 model stream` (the README's first example)."""

from __future__ import annotations

import argparse

from lm2.cli import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="build and inspect LM2 models")
    model_sub = model.add_subparsers(dest="model_command", metavar="SUBCOMMAND")
    model_sub.required = True
    p = model_sub.add_parser(
        "stream",
        help="build an LM2 (preset or folder), stream a long input through it, print time, state size and "
        "memory statistics",
    )
    p.add_argument("--preset", default="tiny", help="a preset name (tiny, small, 40m, lm2-1.7b) or a model folder")
    p.add_argument("--tokens", type=positive_int, default=32768, help="length of the input")
    p.add_argument("--segment-length", type=positive_int, default=1024)
    p.add_argument("--window", type=positive_int, default=256, help="self-attention window (sliding_window)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(func=run_stream)


def run_stream(args) -> int:
    import time
    from pathlib import Path

    import torch
    from tqdm import tqdm

    from lm2 import PRESETS, LM2Config, LM2ForCausalLM
    from lm2.cache import stream

    torch.manual_seed(args.seed)
    if Path(args.preset).is_dir():
        from lm2.eval.common import damaged_weights_error

        with damaged_weights_error(Path(args.preset)):
            model = LM2ForCausalLM.from_pretrained(args.preset, sliding_window=args.window)
    elif args.preset in PRESETS:
        model = LM2ForCausalLM(LM2Config.from_preset(args.preset, sliding_window=args.window))
    else:
        raise ValueError(f"--preset {args.preset!r} is neither a preset ({sorted(PRESETS)}) nor a model folder")
    model.eval()
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"LM2: {params / 1e6:.2f}M parameters, {cfg.num_hidden_layers} blocks, memory in "
          f"{cfg.memory_layer_indices()} with N={cfg.memory_slots} slots, U={cfg.memory_update_interval}, "
          f"window W={cfg.sliding_window}")
    ids = torch.randint(0, cfg.vocab_size, (1, args.tokens))
    initial = {i: layer.memory.initial_memory.detach().clone()
               for i, layer in enumerate(model.model.layers) if layer.memory is not None}
    bar = tqdm(total=args.tokens, unit="tok", desc="streaming")
    sizes = []

    def on_segment(cache, _logits):
        bar.update(min(args.segment_length, args.tokens - bar.n))
        sizes.append(cache.nbytes())

    start = time.perf_counter()
    cache, logits = stream(model, ids, args.segment_length, on_segment=on_segment)
    elapsed = time.perf_counter() - start
    bar.close()
    print(f"{args.tokens} tokens in {elapsed:.1f} s ({1e3 * elapsed / args.tokens:.3f} ms/token); state size "
          f"{sizes[0] / 1e6:.2f} MB after the first segment, {max(sizes) / 1e6:.2f} MB at most")
    print(f"{'layer':>5} {'|M| mean':>9} {'|M - M0| mean':>14} {'slots changed':>14}")
    for i, bank in cache.memory_banks().items():
        delta = (bank[0] - initial[i]).norm(dim=-1)  # per slot
        print(f"{i:5d} {bank[0].norm(dim=-1).mean():9.3f} {delta.mean():14.3f} "
              f"{int((delta > 1e-3).sum())}/{bank.shape[1]:<8d}")
    return 0
