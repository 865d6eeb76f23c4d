"""Top-level commands about the model itself: `lm2 generate` (stream an answer token by token), `lm2 inspect memory`
(read weights before and after test-time memory updates, gates, slot usage) and `lm2 model stream` (the README's
first example). Thin: the flags are these functions' signatures (lm2/cli.py), the work is in lm2/generate.py,
lm2/viz/memory.py and lm2/cache.py."""

from __future__ import annotations

import sys
from pathlib import Path

from lm2.cli import NonNegativeInt, PositiveInt, UserError


def _read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    if (prompt is None) == (prompt_file is None):
        raise UserError("one of the arguments --prompt --prompt-file is required" + (" (not both)" if prompt else ""))
    if prompt is not None:
        return prompt
    path = Path(prompt_file)
    if not path.is_file():
        raise ValueError(f"--prompt-file {path}: no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--prompt-file {path} is not UTF-8 text (byte {err.start}): give a text file") from None


def run_generate(*, model: str, prompt: str | None = None, prompt_file: str | None = None,
                 max_new_tokens: PositiveInt = 256, temperature: float = 0.0, top_p: float = 1.0,
                 memory_update_interval: PositiveInt | None = None, segment_length: PositiveInt | None = None,
                 seed: NonNegativeInt = 0, no_chat_template: bool = False, tokenizer: str | None = None,
                 device: str = "cpu") -> int:
    """generate text from a model folder, printing tokens as they come

    Args:
        model: a model folder (LM2, RMT or any causal LM) or smollm2-135m
        prompt: the prompt text (or --prompt-file)
        prompt_file: a file holding the prompt (for long prompts)
        max_new_tokens: tokens to generate at most
        temperature: 0 = greedy (default); e.g. 0.7 to sample
        top_p: nucleus sampling: keep this much probability mass
        memory_update_interval: write the memory every U tokens (default: the model's interval; 1 = the paper's
            test-time update, one write per token)
        segment_length: feed the prompt this many tokens at a time (default: the attention window, else 1024)
        seed: seed of the sampler
        no_chat_template: feed the raw prompt even if the tokenizer has a chat template
        tokenizer: tokenizer if the folder has none (gpt2, smollm2 or a folder)
        device: cpu, cuda or cuda:<index>
    """
    import time

    from lm2.eval.common import load_model
    from lm2.generate import generate_stream

    text = _read_prompt(prompt, prompt_file)
    loaded = load_model(model, device, tokenizer)
    start = time.perf_counter()
    for piece in generate_stream(loaded.model, loaded.tokenizer, text, max_new_tokens, temperature, top_p,
                                 memory_update_interval, segment_length, seed, chat_template=not no_chat_template):
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


def run_inspect_memory(*, model: str, prompt_file: str, layer: NonNegativeInt, steps: PositiveInt | None = None,
                       out: str | None = None, top_k: PositiveInt = 5, labels: NonNegativeInt = 10,
                       segment_length: PositiveInt | None = None, tokenizer: str | None = None,
                       device: str = "cpu") -> int:
    """read weights of a memory block before and after test-time updates (PNG), top tokens per slot, gate
    statistics and slot usage (report.json, report.txt)

    'Before' reads the prompt against the initial memory with no writes; 'after' reads it against the memory left
    by K test-time update steps (U = 1, one write per token) over the prompt's first K tokens, then over the
    model's greedy continuation if K exceeds the prompt. See lm2/viz/memory.py.

    Args:
        model: an LM2 model folder
        prompt_file: a text file; its raw text is the prompt
        layer: the memory block to draw
        steps: test-time update steps K (default: one per prompt token)
        out: output folder (default: <run folder>/memory-inspection/<checkpoint>-layer<L> for a checkpoint of lm2
            train, else runs/memory-inspection/<model name>-layer<L>)
        top_k: tokens listed per slot
        labels: most attended tokens named on each heatmap
        segment_length: feed the prompt this many tokens at a time (default: the attention window, else 1024)
        tokenizer: tokenizer if the folder has none (gpt2, smollm2 or a folder)
        device: cpu, cuda or cuda:<index>
    """
    from lm2.eval.common import load_model
    from lm2.outdir import check_writable_dir, hold
    from lm2.viz.memory import check_layer, inspect_memory, token_labels, write_report

    if out is not None:  # before the model loads: a bad --out is known at once
        check_writable_dir(out, "--out")
    text = _read_prompt(None, prompt_file)
    loaded = load_model(model, device, tokenizer)
    check_layer(loaded.model, layer)  # before any work: a model without memory has nothing to show
    ids = loaded.tokenizer(text)["input_ids"]
    if not ids:
        raise ValueError(f"--prompt-file {prompt_file} holds no tokens")
    out = out or inspection_dir(loaded, layer)
    inspection = inspect_memory(loaded.model, ids, layer, steps, token_labels(loaded.tokenizer, ids), segment_length)
    extra = {"model": str(loaded.path), "prompt_file": str(prompt_file),
             "continuation": loaded.tokenizer.decode(inspection.continuation)}
    with hold(out, "lm2 inspect memory"):
        paths = write_report(inspection, out, top_k, labels, extra)
    print(paths["text"].read_text(encoding="utf-8"), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def run_stream(*, preset: str = "tiny", tokens: PositiveInt = 32768, segment_length: PositiveInt = 1024,
               window: PositiveInt = 256, seed: NonNegativeInt = 0) -> int:
    """build an LM2 (preset or folder), stream a long input through it, print time, state size and memory
    statistics

    Args:
        preset: a preset name (tiny, small, 40m, lm2-1.7b) or a model folder
        tokens: length of the input
        segment_length: tokens per call
        window: self-attention window (sliding_window)
        seed: seed of the weights and the input
    """
    import time

    import torch
    from tqdm import tqdm

    from lm2 import PRESETS, LM2Config, LM2ForCausalLM
    from lm2.cache import stream

    torch.manual_seed(seed)
    if Path(preset).is_dir():
        from lm2.eval.common import damaged_weights_error

        with damaged_weights_error(Path(preset)):
            model = LM2ForCausalLM.from_pretrained(preset, sliding_window=window)
    elif preset in PRESETS:
        model = LM2ForCausalLM(LM2Config.from_preset(preset, sliding_window=window))
    else:
        raise ValueError(f"--preset {preset!r} is neither a preset ({sorted(PRESETS)}) nor a model folder")
    model.eval()
    cfg = model.config
    params = sum(p.numel() for p in model.parameters())
    print(f"LM2: {params / 1e6:.2f}M parameters, {cfg.num_hidden_layers} blocks, memory in "
          f"{cfg.memory_layer_indices()} with N={cfg.memory_slots} slots, U={cfg.memory_update_interval}, "
          f"window W={cfg.sliding_window}")
    ids = torch.randint(0, cfg.vocab_size, (1, tokens))
    initial = {i: layer.memory.initial_memory.detach().clone()
               for i, layer in enumerate(model.model.layers) if layer.memory is not None}
    bar = tqdm(total=tokens, unit="tok", desc="streaming")
    sizes = []

    def on_segment(cache, _logits, fed):
        bar.update(fed)
        sizes.append(cache.nbytes())

    start = time.perf_counter()
    cache, logits = stream(model, ids, segment_length, on_segment=on_segment)
    elapsed = time.perf_counter() - start
    bar.close()
    print(f"{tokens} tokens in {elapsed:.1f} s ({1e3 * elapsed / tokens:.3f} ms/token); state size "
          f"{sizes[0] / 1e6:.2f} MB after the first segment, {max(sizes) / 1e6:.2f} MB at most")
    print(f"{'layer':>5} {'|M| mean':>9} {'|M - M0| mean':>14} {'slots changed':>14}")
    for i, bank in cache.memory_banks().items():
        delta = (bank[0] - initial[i]).norm(dim=-1)  # per slot
        print(f"{i:5d} {bank[0].norm(dim=-1).mean():9.3f} {delta.mean():14.3f} "
              f"{int((delta > 1e-3).sum())}/{bank.shape[1]:<8d}")
    return 0
