"""Checkpoints: an HF model folder plus the trainer state, written atomically; finding, checking and pruning them.

Layout of a run folder::

    <out_dir>/ckpt-000200/   model.safetensors, config.json, tokenizer files     (loads with from_pretrained)
                             trainer_state.pt  (optimizer, schedule, step, data position, RNG states, best)
                             train_config.yaml (the resolved training config)
    <out_dir>/best/          the same, for the best evaluation so far

A checkpoint is written into a hidden temporary folder and renamed into place with ``os.replace``: a folder
named ``ckpt-*`` is always complete, so a run killed at any moment (even while saving) resumes from the last
complete one. Under FSDP the full state dicts are gathered with ``torch.distributed.checkpoint.state_dict``
(a collective: every process calls ``save``) and process 0 writes.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from lm2.train.config import TrainConfig, from_dict, save_config

_CKPT = re.compile(r"^ckpt-(\d+)$")
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.yaml"


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def full_state_dicts(model: torch.nn.Module, optimizer) -> tuple[dict, dict]:
    """Unsharded model and optimizer state on CPU (identity for a plain model; gathers under FSDP)."""
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model: torch.nn.Module, optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def save(folder: Path, model, optimizer, scheduler, cfg: TrainConfig, step: int, tokenizer=None,
         extra: dict | None = None, is_main: bool = True) -> Path | None:
    """Write a complete checkpoint to ``folder`` atomically. Every process must call it (FSDP gathers)."""
    model_state, optim_state = full_state_dicts(model, optimizer)
    if not is_main:
        return None
    if getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        model_state.pop("lm_head.weight", None)  # tied to the embedding; gathered copies no longer share storage
    folder = Path(folder)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bars would break the training progress bar
    model.save_pretrained(tmp, state_dict=model_state, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    save_config(cfg, tmp / CONFIG_FILE)
    torch.save({"step": step, "optimizer": optim_state, "scheduler": scheduler.state_dict(), "rng": rng_state(),
                **(extra or {})}, tmp / STATE_FILE)
    if folder.exists():  # re-saving a step (or best/): move the old one aside, then drop it once replaced
        old = folder.parent / f".old-{folder.name}-{os.getpid()}"
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    return folder


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    """Complete step checkpoints, oldest first."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := _CKPT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest(out_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def prune(out_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints, and temporary folders of dead saves."""
    for path in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)
    for path in Path(out_dir).glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)


def check_compatible(folder: Path, cfg: TrainConfig) -> None:
    """A checkpoint continues a run only with the same model and tokenizer: raise a clear ValueError otherwise."""
    import yaml

    saved = from_dict(yaml.safe_load((folder / CONFIG_FILE).read_text()))
    mismatches = []
    for section, fields in (("model", ("kind", "preset", "init_from", "config", "rmt")), ("data", ("tokenizer",))):
        for name in fields:
            old, new = getattr(getattr(saved, section), name), getattr(getattr(cfg, section), name)
            if old != new:
                mismatches.append(f"{section}.{name}: checkpoint {old!r}, this config {new!r}")
    if mismatches:
        raise ValueError(f"checkpoint {folder} is incompatible with this config ({'; '.join(mismatches)}): "
                         f"resume with the config it was written with, or start a new out_dir")


def load_model_weights(folder: Path, model: torch.nn.Module) -> None:
    """Load a checkpoint's weights into an unwrapped model; a shape mismatch is reported as incompatibility."""
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {folder} does not fit this model: {str(err).splitlines()[0]}") from None
    tied = {k for k in missing if k == "lm_head.weight" and getattr(model.config, "tie_word_embeddings", False)}
    if set(missing) - tied or unexpected:
        raise ValueError(f"checkpoint {folder} does not fit this model: missing {sorted(set(missing) - tied)[:4]}, "
                         f"unexpected {sorted(unexpected)[:4]}")


def load_trainer_state(folder: Path) -> dict:
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
