"""Correctness checks of LM2 on an accelerator (CUDA): the CPU test suite's key equivalences, run on the GPU.

    python benchmarks/device_check.py            # exits non-zero if a check fails
    python benchmarks/device_check.py --stream-tokens 4096   # a quicker CPU run of the same checks

fp32 checks use TF32 off so that they compare like for like; the bf16 check only asks for finite values and a
loss close to fp32's.
"""

from __future__ import annotations

import argparse
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

import lm2  # noqa: F401
from lm2 import LM2Config, LM2ForCausalLM


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stream-tokens", type=int, default=65536, help="length of the long-stream checks")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else 'cpu'}, torch {torch.__version__}")
    failures = []

    def check(name, ok, detail=""):
        print(f"{'PASS' if ok else 'FAIL'}  {name} {detail}")
        if not ok:
            failures.append(name)

    torch.manual_seed(0)
    fields = dict(vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                  num_attention_heads=8, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=4096)
    ref = LlamaForCausalLM(LlamaConfig(**fields)).to(device).eval()
    ours = LM2ForCausalLM.from_llama(ref, memory_layers=3, memory_slots=32, memory_heads=4,
                                     memory_update_interval=8).to(device).eval()
    ids = torch.randint(0, 1000, (2, 200), device=device)
    with torch.no_grad():
        diff = (ours(ids).logits - ref(ids).logits).abs().max().item()
    check("Llama + zero-initialised memory == HF Llama (fp32)", diff <= 1e-4, f"max diff {diff:.2e}")

    with torch.no_grad():
        for p_name, p in ours.named_parameters():
            if ".memory." in p_name and "initial_memory" not in p_name:
                p.copy_(torch.randn_like(p) * 0.2)
    ours.config.sliding_window = 32
    for layer in ours.model.layers:
        layer.self_attn.window = 32
    with torch.no_grad():
        full = ours(ids).logits
        cache, parts = None, []
        for start, size in [(0, 7), (7, 50), (57, 100), (157, 43)]:
            out = ours(ids[:, start:start + size], cache=cache, use_cache=True)
            cache = out.past_key_values
            parts.append(out.logits)
        diff = (torch.cat(parts, 1) - full).abs().max().item()
    check("streaming in pieces == one call (window 32, memory)", diff <= 1e-4, f"max diff {diff:.2e}")

    prompt = ids[:1, :20]
    with torch.no_grad():
        seq = prompt
        for _ in range(10):
            nxt = ours(seq, memory_update_interval=1).logits[:, -1:].argmax(-1)
            seq = torch.cat([seq, nxt], 1)
        gen = ours.generate(prompt, max_new_tokens=10, do_sample=False, memory_update_interval=1, pad_token_id=0)
    check("generate (cache, U=1) == argmax loop", gen.tolist() == seq.tolist())

    ours.train()
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss_bf16 = ours(ids, labels=ids).loss
    loss_bf16.backward()
    loss_fp32 = ours(ids, labels=ids).loss
    grads_finite = all(torch.isfinite(p.grad).all() for p in ours.parameters() if p.grad is not None)
    check("bf16 autocast forward/backward finite and close to fp32",
          grads_finite and abs(loss_bf16.item() - loss_fp32.item()) < 0.05,
          f"bf16 {loss_bf16.item():.4f} fp32 {loss_fp32.item():.4f}")

    big = LM2ForCausalLM(LM2Config.from_preset("small", sliding_window=512)).to(device).eval()
    long_ids = torch.randint(0, 8192, (1, args.stream_tokens), device=device)
    from lm2.cache import stream

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cache, _ = stream(big, long_ids, 4096)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    check(f"{args.stream_tokens} tokens streamed through the small preset", cache.offset == args.stream_tokens,
          f"peak {peak:.0f} MiB")

    # the same stream in bf16 autocast: the bank's recurrence stays fp32 and ends close to the fp32 bank
    with torch.no_grad():
        for p_name, p in big.named_parameters():
            if ".memory." in p_name and "initial_memory" not in p_name:
                p.copy_(torch.randn_like(p) * 0.05)
        cache32, last32 = stream(big, long_ids, 4096)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            cache16, last16 = stream(big, long_ids, 4096)
    worst = max(((a.memory.memory - b.memory.memory.float()).abs().max() / a.memory.memory.abs().max()).item()
                for a, b in zip(cache32.layers, cache16.layers) if a.memory is not None)
    fp32_banks = all(layer.memory.memory.dtype == torch.float32 for layer in cache16.layers if layer.memory)
    cosine = torch.nn.functional.cosine_similarity(last32.float(), last16.float()).min().item()
    close = fp32_banks and worst <= 0.02 and cosine > 0.999
    check(f"{args.stream_tokens}-token stream in bf16 autocast vs fp32", close,
          f"banks fp32 {fp32_banks}, worst relative bank diff {worst:.2e}, last-logit cosine {cosine:.5f}")
    print("all checks passed" if not failures else f"FAILED: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
