"""Save a pretrained Llama with LM2 memory added (zero-initialised read, so its outputs are the Llama's until
trained) as a model folder that every lm2 command takes.

    python scripts/add_memory.py smollm2-135m runs/smollm2-memory-init --memory-layers 30 --memory-slots 128 \
        --memory-heads 9
"""

from __future__ import annotations

import argparse

from transformers import AutoTokenizer

from lm2 import LM2ForCausalLM
from lm2.pretrained import resolve_pretrained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="an HF Llama folder or smollm2-135m")
    parser.add_argument("out")
    parser.add_argument("--memory-layers", type=int, default=1)
    parser.add_argument("--memory-slots", type=int, default=64)
    parser.add_argument("--memory-heads", type=int, default=1)
    parser.add_argument("--memory-update-interval", type=int, default=64)
    args = parser.parse_args()
    folder = resolve_pretrained(args.source)
    model = LM2ForCausalLM.from_llama(folder, memory_layers=args.memory_layers, memory_slots=args.memory_slots,
                                      memory_heads=args.memory_heads,
                                      memory_update_interval=args.memory_update_interval)
    model.save_pretrained(args.out)
    AutoTokenizer.from_pretrained(folder).save_pretrained(args.out)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: {params / 1e6:.1f}M parameters, memory in {args.memory_layers} blocks")


if __name__ == "__main__":
    main()
