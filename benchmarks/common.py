"""Shared helpers for the benchmarks: the machine's name, timing, FLOP counting."""

from __future__ import annotations

import platform
import statistics
import time

import torch


def machine() -> str:
    """A one-line description of the machine the numbers come from."""
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} torch threads{gpu}, torch {torch.__version__}"


def flops_of(fn) -> int:
    """Floating-point operations that ``fn()`` performs, counted by torch's FlopCounterMode (matmuls,
    attention); elementwise work is not counted, as in the usual MFU convention."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_times(fns: dict, repeats: int, warmup: int = 1, device: str = "cpu") -> dict[str, float]:
    """Median seconds per call of each function, measured round-robin so that a machine whose speed drifts
    (this one swings by up to 3x) slows every candidate alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


LLAMA_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings",
                "rope_parameters")


def hf_llama(cfg, device: str, seed: int = 0):
    """transformers' LlamaForCausalLM with the backbone of an LM2Config (SDPA attention, the same seed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    fields = {k: getattr(cfg, k) for k in LLAMA_FIELDS}
    return LlamaForCausalLM(LlamaConfig(**fields, attn_implementation="sdpa")).to(device)


def add_runtime_args(parser) -> None:
    """The flags every benchmark takes: --warmup, --device, --threads."""
    import torch

    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); use 1 on a machine shared with other jobs")


def start(args) -> None:
    """Apply --threads and print the machine line that every benchmark output begins with."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
