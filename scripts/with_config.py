"""Copy a saved checkpoint with fields of its model config changed, to evaluate the same weights under another
setting (one that adds no parameters, e.g. memory_write_threshold or memory_write_route), without training.

    python scripts/with_config.py runs/qa1-memory/lm2/words/ckpt-000400 runs/cut05 memory_write_threshold=0.05

Each VALUE is read as YAML (0.05, top1, true, null). The new config is checked by LM2Config before anything is
written, and the destination must not exist yet (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
import yaml

from lm2 import LM2Config, LM2ForCausalLM


def changed_config(config: dict, changes: list[str], fields: set[str] = frozenset()) -> dict:
    """``config`` with each KEY=VALUE of ``changes`` set; a key that is neither in the config nor one of ``fields``
    (the config class's, for a checkpoint saved before a field existed) is refused: a typo would otherwise be saved
    and ignored."""
    config = dict(config)
    for change in changes:
        key, sep, text = change.partition("=")
        if not sep or not key:
            raise ValueError(f"{change!r} is not KEY=VALUE (e.g. memory_write_threshold=0.05)")
        if key not in config and key not in fields:
            raise ValueError(f"{key!r} is not a field of this checkpoint's config.json (is it spelled right?)")
        config[key] = yaml.safe_load(text)
    return config


def same_parameters(before: LM2Config, after: LM2Config) -> None:
    """Refuse a change that adds, removes or reshapes a parameter: the copied weights would not fit it."""
    def shapes(config):
        with torch.device("meta"):
            return {name: tuple(p.shape) for name, p in LM2ForCausalLM(config).state_dict().items()}

    old, new = shapes(before), shapes(after)
    if old != new:
        differ = sorted(set(old) ^ set(new)) or sorted(k for k in old if old[k] != new[k])
        raise ValueError(f"this change alters the model's parameters ({', '.join(differ[:3])}...): the saved weights "
                         "would not fit it; train a model with it instead")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a checkpoint folder (holds config.json)")
    parser.add_argument("dest", type=Path, help="the new checkpoint folder (must not exist)")
    parser.add_argument("changes", nargs="+", metavar="KEY=VALUE")
    args = parser.parse_args()
    source_config = args.source / "config.json"
    if not source_config.is_file():
        sys.exit(f"with_config: {source_config} does not exist: give a checkpoint folder (ckpt-NNNNNN)")
    if args.dest.exists():
        sys.exit(f"with_config: {args.dest} already exists; remove it or choose another destination")
    try:
        saved = json.loads(source_config.read_text())
        fields = set(LM2Config().to_dict()) if saved.get("model_type") == "lm2" else set()
        config = changed_config(saved, args.changes, fields)
        if config.get("model_type") == "lm2":
            # LM2Config's own checks run here, as when the model loads
            same_parameters(LM2Config.from_dict(saved), LM2Config.from_dict(config))
    except ValueError as err:
        sys.exit(f"with_config: {err}")
    shutil.copytree(args.source, args.dest)
    (args.dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"{args.dest}: {args.source} with " + ", ".join(args.changes))


if __name__ == "__main__":
    main()
