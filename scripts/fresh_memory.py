"""Copy an LM2 checkpoint with its memory modules back at their initialisation and everything else as trained.

Every tensor whose name holds ``.memory.`` gets the value a new model of the same config starts with (under
``--seed``): the read projection at zero, so the copy answers exactly as its backbone alone until it trains on.
The rest of the folder (tokenizer, train config, trainer state) is copied as it is, and the manifest is rewritten,
so ``lm2 train ... --model.init_from OUT`` takes it like any checkpoint. A diagnostic: does a backbone that did not
learn to use its memory learn it from a fresh one (RESULTS.md 1c)?

    python scripts/fresh_memory.py runs/qa1-memory/lm2/zero/ckpt-002000 runs/zero-fresh-memory --seed 0
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from lm2 import LM2ForCausalLM
from lm2.train import checkpoint as ckpt


def fresh_memory(source: str | Path, out: str | Path, seed: int = 0) -> list[str]:
    """Write the copy to ``out`` (which must not exist); returns the names of the tensors re-initialised."""
    source, out = Path(source), Path(out)
    problem = ckpt.damage(source)
    if problem is not None:
        raise ValueError(f"{source} is not an intact lm2 checkpoint ({problem}): give a ckpt-NNNNNN folder")
    if out.exists():
        raise ValueError(f"{out} exists: give a new folder (nothing there is overwritten)")
    model = LM2ForCausalLM.from_pretrained(source)
    torch.manual_seed(seed)
    start = LM2ForCausalLM(model.config).state_dict()
    state = model.state_dict()
    names = [name for name in state if ".memory." in name]
    if not names:
        raise ValueError(f"{source} has no memory blocks (model.config.memory_layers is 0): nothing to re-initialise")
    state.update({name: start[name] for name in names})
    model.load_state_dict(state)
    shutil.copytree(source, out)
    (out / ckpt.MANIFEST_FILE).unlink()
    model.save_pretrained(out)
    ckpt.write_manifest(out)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="an lm2 checkpoint folder (ckpt-NNNNNN)")
    parser.add_argument("out", help="a new folder for the copy")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the fresh memory's initialisation")
    args = parser.parse_args()
    names = fresh_memory(args.source, args.out, args.seed)
    print(f"{args.out}: {len(names)} memory tensors back at their initialisation (seed {args.seed}), the rest as "
          f"in {args.source}")


if __name__ == "__main__":
    main()
