"""Top-level commands about the model itself: `lm2 generate` (stream an answer token by token), `lm2 inspect memory`
(read weights before and after test-time memory updates, gates, slot usage) and `lm2 model stream` (the README's
first example). Thin: parsing here, the work in lm2/generate.py, lm2/viz/memory.py and lm2/cache.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lm2.cli import nonnegative_int, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate text from a model folder, printing tokens as they come")
    p.add_argument("--model", required=True, help="a model folder (LM2, RMT or any causal LM) or smollm2-135m")
    prompt = p.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--prompt", help="the prompt text")
    prompt.add_argument("--prompt-file", help="a file holding the prompt (for long prompts)")
    p.add_argument("--max-new-tokens", type=positive_int, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default); e.g. 0.7 to sample")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep this much probability mass")
    p.add_argument("--memory-update-interval", type=positive_int, default=None, metavar="U",
                   help="write the memory every U tokens (default: the model's interval; 1 = the paper's "
                        "test-time update, one write per token)")
    p.add_argument("--segment-length", type=positive_int, default=None,
                   help="feed the prompt this many tokens at a time (default: the attention window, else 1024)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the sampler")
    p.add_argument("--no-chat-template", action="store_true", help="feed the raw prompt even if the tokenizer "
                                                                    "has a chat template")
    p.add_argument("--tokenizer", default=None, help="tokenizer if the folder has none (gpt2, smollm2 or a folder)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_generate)

    inspect = sub.add_parser("inspect", help="look inside a model")
    inspect_sub = inspect.add_subparsers(dest="inspect_command", metavar="SUBCOMMAND")
    inspect_sub.required = True
    p = inspect_sub.add_parser(
        "memory",
        help="read weights of a memory block before and after test-time updates (PNG), top tokens per slot, "
             "gate statistics and slot usage (report.json, report.txt)",
        description="'Before' reads the prompt against the initial memory with no writes; 'after' reads it "
                    "against the memory left by K test-time update steps (U = 1, one write per token) over the "
                    "prompt's first K tokens, then over the model's greedy continuation if K exceeds the prompt. "
                    "See lm2/viz/memory.py.",
    )
    p.add_argument("--model", required=True, help="an LM2 model folder")
    p.add_argument("--prompt-file", required=True, help="a text file; its raw text is the prompt")
    p.add_argument("--layer", type=nonnegative_int, required=True, help="the memory block to draw")
    p.add_argument("--steps", type=positive_int, default=None, metavar="K",
                   help="test-time update steps (default: one per prompt token)")
    p.add_argument("--out", default=None,
                   help="output folder (default: <run folder>/memory-inspection/<checkpoint>-layer<L> for a checkpoint "
                        "of lm2 train, else runs/memory-inspection/<model name>-layer<L>)")
    p.add_argument("--top-k", type=positive_int, default=5, help="tokens listed per slot")
    p.add_argument("--labels", type=nonnegative_int, default=10, help="most attended tokens named on each heatmap")
    p.add_argument("--segment-length", type=positive_int, default=None)
    p.add_argument("--tokenizer", default=None, help="tokenizer if the folder has none (gpt2, smollm2 or a folder)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_inspect_memory)

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


def _read_prompt(args) -> str:
    if getattr(args, "prompt", None) is not None:
        return args.prompt
    path = Path(args.prompt_file)
    if not path.is_file():
        raise ValueError(f"--prompt-file {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--prompt-file {path} is not UTF-8 text (byte {err.start}): give a text file") from None


def run_generate(args) -> int:
    import time

    from lm2.eval.common import load_model
    from lm2.generate import generate_stream

    prompt = _read_prompt(args)
    loaded = load_model(args.model, args.device, args.tokenizer)
    start = time.perf_counter()
    for piece in generate_stream(loaded.model, loaded.tokenizer, prompt, args.max_new_tokens, args.temperature,
                                 args.top_p, args.memory_update_interval, args.segment_length, args.seed,
                                 chat_template=not args.no_chat_template):
        print(piece, end="", flush=True)
    print()
    print(f"[{time.perf_counter() - start:.1f} s]", file=sys.stderr)
    return 0


def inspection_dir(loaded, layer: int) -> Path:
    """Where ``lm2 inspect memory`` writes without --out: next to the checkpoints of the run the model comes from
    (never into a checkpoint, whose manifest would no longer match), else under runs/ like the evaluations."""
    from lm2.eval.common import default_out_dir

    path = loaded.path
    if (path / "train_config.yaml").is_file():  # a checkpoint lm2 train wrote: its parent is the run folder
        return path.parent / "memory-inspection" / f"{path.name}-layer{layer}"
    return Path("runs") / "memory-inspection" / f"{default_out_dir(loaded, 'inspect').name}-layer{layer}"


def run_inspect_memory(args) -> int:
    from lm2.eval.common import load_model
    from lm2.outdir import check_writable_dir, hold
    from lm2.viz.memory import check_layer, inspect_memory, token_labels, write_report

    if args.out is not None:  # before the model loads: a bad --out is known at once
        check_writable_dir(args.out, "--out")
    text = _read_prompt(args)
    loaded = load_model(args.model, args.device, args.tokenizer)
    check_layer(loaded.model, args.layer)  # before any work: a model without memory has nothing to show
    ids = loaded.tokenizer(text)["input_ids"]
    if not ids:
        raise ValueError(f"--prompt-file {args.prompt_file} holds no tokens")
    out = args.out or inspection_dir(loaded, args.layer)
    inspection = inspect_memory(loaded.model, ids, args.layer, args.steps, token_labels(loaded.tokenizer, ids),
                                args.segment_length)
    extra = {"model": str(loaded.path), "prompt_file": str(args.prompt_file),
             "continuation": loaded.tokenizer.decode(inspection.continuation)}
    with hold(out, "lm2 inspect memory"):
        paths = write_report(inspection, out, args.top_k, args.labels, extra)
    print(paths["text"].read_text(encoding="utf-8"), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def run_stream(args) -> int:
    import time

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
