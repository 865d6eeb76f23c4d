"""What every evaluation needs: loading a model folder, choosing the device, knowing whether a model streams.

Any Hugging Face causal LM folder loads (LM2, vanilla, RMT and plain Llama checkpoints alike). LM2 and RMT
models *stream*: they take any input length segment by segment with a carried state, so an evaluation feeds
them long inputs in pieces. Every other model gets its input in one call and is limited to its
``max_position_embeddings``; asking it for more is a clear error, never a silent truncation.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LoadedModel:
    model: Any  # a transformers causal LM in eval mode, on its device
    tokenizer: Any
    path: Path
    name: str  # a short label for tables and file names (the folder name)

    @property
    def kind(self) -> str:
        return model_kind(self.model)


def resolve_device(name: str | None) -> "torch.device":  # noqa: F821
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... as a torch.device; ValueError for a device this machine lacks."""
    import torch

    name = name or "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name!r} is not a device: use cpu, cuda or cuda:<index>") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: this machine has no CUDA device (torch.cuda.is_available() is "
                             "False); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu" and not (device.type == "mps" and torch.backends.mps.is_available()):
        raise ValueError(f"--device {name!r}: use cpu or cuda")
    return device


def load_model(name_or_path: str | os.PathLike, device: str | None = "cpu",
               tokenizer: str | None = None) -> LoadedModel:
    """Load a causal LM and its tokenizer from a checkpoint folder (or a name ``lm2.pretrained`` knows, such as
    ``smollm2-135m``), in fp32 and eval mode, on ``device``.

    ``tokenizer`` overrides the folder's own tokenizer ("gpt2", "smollm2" or a folder). Raises ValueError with
    the reason when the folder is not a model lm2 can load.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    import lm2  # noqa: F401  (registers the lm2 model type with the Auto classes)
    import lm2.rmt  # noqa: F401  (registers lm2-rmt)
    from lm2.data.tokenizers import load_tokenizer
    from lm2.pretrained import resolve_pretrained

    path = resolve_pretrained(name_or_path)  # ValueError for a name it does not know or a folder without config
    device = resolve_device(device)
    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(f"{path} is not a model folder lm2 can load: its config.json is not a transformers "
                         f"config ({str(err).splitlines()[0]})") from None
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per load would bury the command's own output (and its errors)
    try:
        with damaged_weights_error(path):
            model = AutoModelForCausalLM.from_pretrained(path, config=config, dtype=torch.float32)
    except (ValueError, OSError) as err:
        raise ValueError(f"{path} is not a causal LM checkpoint lm2 can load: {str(err).splitlines()[0]}") from None
    model.eval().to(device)
    try:
        tok = load_tokenizer(tokenizer if tokenizer is not None else path)
    except ValueError as err:
        raise ValueError(f"{err}; pass --tokenizer (gpt2, smollm2 or a folder) if the checkpoint has none") from None
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token  # batches are padded; the padding is masked or never attended
    name = path.name if path.name not in ("best", "final") and not path.name.startswith("ckpt-") else (
        f"{path.parent.name}-{path.name}")
    return LoadedModel(model, tok, path, name)


@contextlib.contextmanager
def damaged_weights_error(path: Path):
    """Turn safetensors' complaint about a truncated or garbled weights file into a ValueError naming the file."""
    from safetensors import SafetensorError

    try:
        yield
    except SafetensorError as err:
        files = ", ".join(p.name for p in sorted(Path(path).glob("*.safetensors"))) or "*.safetensors"
        raise ValueError(f"{Path(path) / files} is damaged or truncated ({str(err).splitlines()[0]}); copy or save "
                         f"the model again") from None


@contextlib.contextmanager
def quiet_lm_eval(log: str | os.PathLike | None):
    """Keep lm-evaluation-harness quiet while the body runs (``--no-progress``): its warnings are raised to errors
    only (it resets its logger's level from LMEVAL_LOG_LEVEL), and whatever still reaches the process's stderr,
    such as the "fatal: not a git repository" of the git it runs, goes to ``log`` (None: change nothing)."""
    import logging
    import sys

    if log is None:
        yield
        return
    logger = logging.getLogger("lm_eval")
    level, env = logger.level, os.environ.get("LMEVAL_LOG_LEVEL")
    logger.setLevel(logging.ERROR)
    os.environ["LMEVAL_LOG_LEVEL"] = "ERROR"
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(log, "ab") as f:
            os.dup2(f.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        logger.setLevel(level)
        if env is None:
            os.environ.pop("LMEVAL_LOG_LEVEL", None)
        else:
            os.environ["LMEVAL_LOG_LEVEL"] = env


def model_kind(model: Any) -> str:
    """"lm2" (memory blocks), "vanilla" (LM2 code, no memory), "rmt", "streaming" (another model with the
    streaming interface), or "hf" (any other causal LM)."""
    from lm2.modeling_lm2 import LM2ForCausalLM
    from lm2.rmt import RMTForCausalLM

    if isinstance(model, RMTForCausalLM):
        return "rmt"
    if isinstance(model, LM2ForCausalLM):
        return "lm2" if model.config.has_memory else "vanilla"
    return "streaming" if is_streaming(model) else "hf"


def is_streaming(model: Any) -> bool:
    """Whether the model has LM2's streaming interface (LM2, vanilla, RMT): ``new_cache()``, and a forward
    that takes any input length plus the state returned by the previous call (``cache=``)."""
    return callable(getattr(model, "new_cache", None))


def padding_multiple(model: Any) -> int:
    """Left padding by a multiple of this leaves a model's outputs for the real tokens unchanged.

    LM2 writes memory at absolute multiples of U and RMT closes a segment at multiples of S; padding by a multiple
    keeps every real token in the same chunk or segment (padding-only chunks write nothing, padding-only RMT
    segments keep the memory, and RoPE and the window only see relative positions). A model without memory, or
    a non-streaming one (generate() gives each row its own positions), takes any padding: 1.
    """
    kind = model_kind(model)
    if kind == "lm2":
        return int(model.config.memory_update_interval)
    if kind == "rmt":
        return int(model.config.rmt_segment_length)
    return 1


def max_positions(model: Any) -> int | None:
    """The longest input a non-streaming model takes in one call (None: a streaming model, no limit)."""
    if is_streaming(model):
        return None
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_fits(model: Any, n_tokens: int, what: str) -> None:
    """ValueError when a non-streaming model cannot take ``n_tokens`` positions in one call."""
    limit = max_positions(model)
    if limit is not None and n_tokens > limit:
        raise ValueError(
            f"{what} needs {n_tokens} positions, but this {type(model).__name__} takes at most {limit} "
            f"(max_position_embeddings) and cannot stream longer inputs; use shorter inputs, or an LM2/RMT model "
            "that streams"
        )


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a generated answer: the tokenizer's eos and the generation config's."""
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen = getattr(model, "generation_config", None)
    extra = getattr(gen, "eos_token_id", None) if gen is not None else None
    if isinstance(extra, int):
        ids.add(extra)
    elif isinstance(extra, (list, tuple)):
        ids.update(int(i) for i in extra)
    return ids


def write_json(path: str | os.PathLike, data: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def appended_records(path: Path) -> list[Any]:
    """The JSON lines a run appended to ``path`` as it went (none without the file). A last line that does not
    parse is the one a killed run was writing and is skipped; any other bad line raises ValueError naming it."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for lineno, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if lineno == len(lines):
                break
            raise ValueError(f"cannot resume from {path}:{lineno}: not valid JSON; delete the file to redo its "
                             "work") from None
    return records


def batched(items: list, size: int):
    if size < 1:
        raise ValueError(f"--batch-size {size} is invalid: it must be a positive integer")
    for i in range(0, len(items), size):
        yield items[i : i + size]


def default_out_dir(loaded: LoadedModel, command: str) -> Path:
    """Where a command writes when no --out is given: runs/eval/<command>/<model name> (runs/ is git-ignored)."""
    return Path("runs") / "eval" / command / re.sub(r"[^A-Za-z0-9._-]+", "_", loaded.name)
