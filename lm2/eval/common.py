"""What every evaluation needs: loading a model folder, choosing the device, writing results.

Any Hugging Face causal LM folder loads (LM2, vanilla, RMT and plain Llama checkpoints alike). What an evaluation
asks of the loaded model (does it stream, how long an input it takes) is in ``lm2/model_facts.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForCausalLM
from transformers.utils import logging as hf_logging

import lm2  # noqa: F401  (registers the lm2 model type with the Auto classes)
import lm2.rmt  # noqa: F401  (registers lm2-rmt)
from lm2.data.tokenizers import load_tokenizer
from lm2.model_facts import model_kind
from lm2.pretrained import resolve_pretrained


@dataclass
class LoadedModel:
    model: Any  # a transformers causal LM in eval mode, on its device
    tokenizer: Any
    path: Path
    name: str  # a short label for tables and file names (the folder name)

    @property
    def kind(self) -> str:
        return model_kind(self.model)


def resolve_device(name: str | None) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... as a torch.device; ValueError for a device this machine lacks."""
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
    path = resolve_pretrained(name_or_path)  # ValueError for a name it does not know or a folder without config
    device = resolve_device(device)
    try:
        config = AutoConfig.from_pretrained(path)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(f"{path} is not a model folder lm2 can load: its config.json is not a transformers "
                         f"config ({str(err).splitlines()[0]})") from None
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
