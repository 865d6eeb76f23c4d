"""Checkpoints: an HF model folder plus the trainer state, written atomically; finding, checking and pruning them.

Layout of a run folder::

    <out_dir>/ckpt-000200/   model.safetensors, config.json, tokenizer files     (loads with from_pretrained)
                             trainer_state.pt  (optimizer, schedule, step, data position, RNG states, best)
                             train_config.yaml (the resolved training config)
                             README.md         (the model card) and lm2_loader.py (lm2.train.model_card)
                             manifest.json     (size and sha256 of each file above)
    <out_dir>/best/          the same, for the best evaluation so far

A checkpoint is written into a hidden temporary folder, its ``manifest.json`` (size and sha256 of every file)
last, and renamed into place with ``os.replace``: a folder named ``ckpt-*`` is complete, so a run killed at any
moment (even while saving) resumes from the last complete one, and ``--resume`` can tell a checkpoint damaged
since (a truncated copy, a flipped bit) from an intact one and fall back to the newest intact one. Under FSDP the
full state dicts are gathered with ``torch.distributed.checkpoint.state_dict`` (a collective: every process calls
``save``) and process 0 writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from transformers.utils import logging as hf_logging

from lm2.train.config import TrainConfig, from_dict, save_config
from lm2.train.model_card import add_loader

_CKPT = re.compile(r"^ckpt-(\d+)$")
STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "train_config.yaml"
MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
# What a run writes into its out_dir besides its checkpoints: the files a new run would replace.
RUN_FILES = ("metrics.jsonl", "tensorboard", "config.yaml", "curves.png")


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the run stopped without applying that step."""


def rng_state() -> dict:
    # numpy's key array goes in as a tensor: the trainer state must hold only what torch.load(weights_only=True)
    # reads (tensors and plain containers), so that loading a checkpoint from elsewhere cannot run code.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def full_state_dicts(model: torch.nn.Module, optimizer) -> tuple[dict, dict]:
    """Unsharded model and optimizer state on CPU (identity for a plain model; gathers under FSDP)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer_state(model: torch.nn.Module, optimizer, state: dict) -> None:
    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def save(folder: Path, model, optimizer, scheduler, cfg: TrainConfig, step: int, tokenizer=None,
         extra: dict | None = None, is_main: bool = True, card: str | None = None) -> Path | None:
    """Write a complete checkpoint to ``folder`` atomically. Every process must call it (FSDP gathers).

    ``card`` is the model card (README.md; ``lm2.train.model_card``); the folder also gets the loader that lets
    transformers say what it needs when lm2 is not imported."""
    model_state, optim_state = full_state_dicts(model, optimizer)
    if not is_main:
        return None
    if getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        model_state.pop("lm_head.weight", None)  # tied to the embedding; gathered copies no longer share storage
    poisoned = [name for name, t in model_state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if poisoned:  # the loop never applies a non-finite step; this keeps a NaN model from ever becoming a checkpoint
        raise TrainingDiverged(f"step {step}: {len(poisoned)} weights hold NaN or inf (e.g. {poisoned[0]}); "
                               f"not saved as {Path(folder).name}")
    folder = Path(folder)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hf_logging.disable_progress_bar()  # "Writing model shards" bars would break the training progress bar
    model.save_pretrained(tmp, state_dict=model_state, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    add_loader(tmp)
    if card is not None:
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
    save_config(cfg, tmp / CONFIG_FILE)
    torch.save({"step": step, "optimizer": optim_state, "scheduler": scheduler.state_dict(), "rng": rng_state(),
                **(extra or {})}, tmp / STATE_FILE)
    write_manifest(tmp)
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record the size and sha256 of every file in ``folder``; written last and atomically (a manifest exists only
    once every file it lists is complete)."""
    tmp = folder / f".{MANIFEST_FILE}.tmp"
    files = {str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": _sha256(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p not in (tmp, folder / MANIFEST_FILE)}
    tmp.write_text(json.dumps({"files": files}, indent=1))
    os.replace(tmp, folder / MANIFEST_FILE)


def damage(folder: Path) -> str | None:
    """Why the checkpoint ``folder`` cannot be trusted (a missing, resized or changed file), or None if intact."""
    try:
        files = json.loads((folder / MANIFEST_FILE).read_text())["files"]
    except FileNotFoundError:
        return f"no {MANIFEST_FILE} (incomplete, or written by an lm2 without manifests)"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{MANIFEST_FILE} is unreadable"
    for required in (STATE_FILE, CONFIG_FILE, "config.json"):
        if required not in files:
            return f"{MANIFEST_FILE} does not list {required}"
    for name, meta in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != meta["size"]:
            return f"{name} has {path.stat().st_size} bytes, the manifest says {meta['size']}"
        if _sha256(path) != meta["sha256"]:
            return f"{name} differs from its sha256 in the manifest"
    return None


def latest_intact(out_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest step checkpoint that matches its manifest, and (checkpoint, why) for each newer one that does
    not."""
    damaged = []
    for path in reversed(list_checkpoints(out_dir)):
        reason = damage(path)
        if reason is None:
            return path, damaged
        damaged.append((path, reason))
    return None, damaged


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``damaged-ckpt-*``: kept for a post-mortem, out of the way of resuming and
    pruning (the resumed run writes that step again)."""
    target = path.parent / f"damaged-{path.name}"
    shutil.rmtree(target, ignore_errors=True)
    os.replace(path, target)
    return target


def existing_run(out_dir: str | Path) -> list[str]:
    """What in ``out_dir`` belongs to an earlier run (checkpoints, best/, metrics, TensorBoard), by name."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    names = [p.name for p in list_checkpoints(out_dir)]
    names += [name for name in ("best", *RUN_FILES) if name != "config.yaml" and (out_dir / name).exists()]
    return names


def clear_run(out_dir: str | Path) -> None:
    """Delete an earlier run's files from ``out_dir`` (``--overwrite``); other files stay."""
    out_dir = Path(out_dir)
    doomed = list_checkpoints(out_dir) + [out_dir / name for name in ("best", *RUN_FILES)]
    doomed += [p for pattern in (".tmp-*", ".old-*") for p in out_dir.glob(pattern)]
    for path in doomed:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def prune(out_dir: str | Path, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` step checkpoints, and temporary folders of dead saves. Safe only
    under the out_dir's lock (``lm2.outdir.hold``): then every checkpoint and temporary folder is this run's."""
    for path in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(path, ignore_errors=True)
    for path in Path(out_dir).glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)


def check_compatible(folder: Path, cfg: TrainConfig) -> None:
    """A checkpoint continues a run only with the same model and tokenizer: raise a clear ValueError otherwise."""
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
    """The trainer state of a checkpoint, read without unpickling anything but tensors and plain containers:
    a checkpoint folder received from someone else must not run their code (``weights_only=True`` refuses any
    other object, e.g. one whose ``__reduce__`` calls a function)."""
    path = Path(folder) / STATE_FILE
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} was refused: it is damaged or holds objects other than tensors and plain "
                         f"containers ({reason[:200]}); resume only from checkpoints lm2 wrote") from None
