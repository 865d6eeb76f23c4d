"""Long-context streaming: time per token and peak memory of LM2 with a sliding window, fed segment by segment
through ``lm2.cache.stream``, against transformers' LlamaForCausalLM of the same size with full attention
(one forward over the whole input under torch.no_grad), on the same random inputs.

    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/streaming.py                        # 1k .. 128k, tiny
    PYTHONPATH=$PWD:$PWD/benchmarks python benchmarks/streaming.py --preset tiny --window 256 --segment 512 \
        --lengths 1k 4k 8k 16k 64k 128k --repeats 2 --hf-timeout 120 --device cpu

Every (model, length) measurement runs in a fresh subprocess, so its peak memory is its own: on CPU the peak
resident set size (``ru_maxrss``, which includes the Python interpreter, torch and the model; the growth over the
resident size just before the measured call is shown as "+RSS"), on CUDA ``torch.cuda.max_memory_allocated``.
Time per token is the median over ``--repeats`` passes of the whole input divided by its length (a short
warm-up pass comes first). HF runs get ``--hf-timeout`` seconds each (whole subprocess, model build included)
and report "timeout" or "OOM" when they do not finish; LM2 runs get ``--lm2-timeout``.

Targets (a missed one prints "MISSED by X", X = how far the value is from the target):
  * LM2 time per token at 128k / at 4k   <= 1.2
  * LM2 peak memory at 128k / at 8k      <= 1.2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from common import machine, sync

RESULT = "RESULT "


def parse_length(text: str) -> int:
    text = text.strip().lower()
    if text.endswith("k"):
        return int(float(text[:-1]) * 1024)
    return int(text)


def label(n: int) -> str:
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def current_rss() -> int:
    """Resident bytes now (Linux /proc), 0 if unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# ----------------------------------------------------------------------------- worker (one subprocess)


def worker(args) -> None:
    from lm2 import LM2Config, LM2ForCausalLM
    from lm2.cache import stream

    device = args.device
    cfg = LM2Config.from_preset(args.preset, sliding_window=args.window)
    if args.threads:
        torch.set_num_threads(args.threads)
    ids = torch.randint(0, cfg.vocab_size, (1, args.length), generator=torch.Generator().manual_seed(1)).to(device)
    torch.manual_seed(0)  # the same weights at every length
    if args.worker == "lm2":
        model = LM2ForCausalLM(cfg).to(device).eval()

        def run(x):
            stream(model, x, args.segment, model.new_cache())
    else:
        from common import hf_llama

        model = hf_llama(cfg, device).eval()

        @torch.no_grad()
        def run(x):
            model(input_ids=x, use_cache=False, logits_to_keep=1)

    run(ids[:, : min(args.length, 2 * args.segment)])  # warm-up on a short prefix
    sync(device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss_before = current_rss()
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        run(ids)
        sync(device)
        times.append(time.perf_counter() - start)
    result = {"seconds": statistics.median(times), "tokens": args.length, "peak_rss": peak_rss(),
              "rss_growth": max(0, peak_rss() - rss_before)}
    if device.startswith("cuda"):
        result["cuda_peak"] = torch.cuda.max_memory_allocated()
    print(RESULT + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------- driver


def measure(args, model: str, length: int, timeout: float | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", model, "--length", str(length),
           "--preset", args.preset, "--window", str(args.window), "--segment", str(args.segment),
           "--repeats", str(args.repeats), "--device", args.device, "--threads", str(args.threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    err = proc.stderr.lower()
    if proc.returncode in (-9, 137) or "out of memory" in err or "memoryerror" in err or "can't allocate" in err:
        return {"error": "OOM"}
    tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
    return {"error": f"failed: {tail[0][:80]}"}


def memory_of(r: dict, device: str) -> int:
    return r["cuda_peak"] if device.startswith("cuda") else r["peak_rss"]


def check(text: str, value: float, target: float) -> None:
    verdict = "ok" if value <= target else f"MISSED by {value - target:.3f}"
    print(f"  {text} = {value:.3f} (target <= {target}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", nargs="+", default=["1k", "4k", "8k", "16k", "64k", "128k"])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--window", type=int, default=256, help="LM2's sliding window W")
    parser.add_argument("--segment", type=int, default=512, help="tokens per streamed segment")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hf-timeout", type=float, default=120.0, help="seconds per HF run")
    parser.add_argument("--lm2-timeout", type=float, default=1800.0, help="seconds per LM2 run")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per run (0: torch's default); use 1 on a machine shared with other jobs")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--worker", choices=["lm2", "hf"], help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    lengths = sorted({parse_length(x) for x in args.lengths})
    mem_name = "CUDA max allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"device {args.device}, preset {args.preset}, batch 1, fp32; LM2 window {args.window}, segment "
          f"{args.segment}, streamed; HF Llama full attention, one forward; median of {args.repeats}; memory = "
          f"{mem_name}, each run in a fresh process\n")
    header = f"{'length':>7} {'model':8} {'total s':>9} {'us/token':>9} {'memory MiB':>11} {'+RSS MiB':>9}"
    print(header)
    print("-" * len(header))
    results: dict[str, dict[int, dict]] = {"lm2": {}, "hf": {}}
    for n in lengths:
        for model in ("lm2",) if args.skip_hf else ("lm2", "hf"):
            r = measure(args, model, n, args.hf_timeout if model == "hf" else args.lm2_timeout)
            results[model][n] = r
            if "error" in r:
                print(f"{label(n):>7} {model:8} {r['error']:>9}", flush=True)
            else:
                print(f"{label(n):>7} {model:8} {r['seconds']:9.2f} {1e6 * r['seconds'] / n:9.1f} "
                      f"{memory_of(r, args.device) / 2**20:11.1f} {r['rss_growth'] / 2**20:9.1f}", flush=True)

    print("\nchecks:")
    lm2 = {n: r for n, r in results["lm2"].items() if "error" not in r}

    def per_token(n):
        return lm2[n]["seconds"] / n

    k4, k8, k128 = 4 * 1024, 8 * 1024, 128 * 1024
    if k128 in lm2 and k4 in lm2:
        check("LM2 time per token 128k / 4k", per_token(k128) / per_token(k4), 1.2)
    else:
        print("  LM2 time per token 128k / 4k: not measured (needs 4k and 128k in --lengths)")
    if k128 in lm2 and k8 in lm2:
        check("LM2 peak memory 128k / 8k", memory_of(lm2[k128], args.device) / memory_of(lm2[k8], args.device), 1.2)
    else:
        print("  LM2 peak memory 128k / 8k: not measured (needs 8k and 128k in --lengths)")
    longest = max(lm2) if lm2 else None
    if longest and min(lm2) != longest:
        print(f"  for reference: LM2 time per token {label(longest)} / {label(min(lm2))} = "
              f"{per_token(longest) / per_token(min(lm2)):.3f}, memory {label(longest)} / {label(min(lm2))} = "
              f"{memory_of(lm2[longest], args.device) / memory_of(lm2[min(lm2)], args.device):.3f}")
    for n, r in results["hf"].items():
        if "error" not in r and n in lm2:
            print(f"  {label(n)}: LM2 / HF time per token = {lm2[n]['seconds'] / r['seconds']:.3f}, "
                  f"memory = {memory_of(lm2[n], args.device) / memory_of(r, args.device):.3f}")


if __name__ == "__main__":
    main()
