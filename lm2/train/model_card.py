"""What makes a checkpoint folder shareable: a model card (README.md) and a loader transformers can name.

Every checkpoint ``lm2 train`` writes gets, next to its weights:

* ``README.md``, the model card: architecture and memory settings, parameter counts, training data and tokens
  seen, the evaluation lm2 recorded for it, the command that made it, and how to load it.
* ``lm2_loader.py`` plus an ``auto_map`` entry in ``config.json``. transformers does not know the ``lm2`` model
  type until ``import lm2`` registers it; without ``auto_map`` it would tell someone who received the folder to
  upgrade transformers. With it, transformers says the folder needs code to run (``trust_remote_code=True``); with
  that flag it runs ``lm2_loader.py``, which imports lm2 (so the folder loads) or, where lm2 is not installed,
  stops with ``LOADER_MESSAGE``: install lm2 and import it. transformers runs no code from a folder without the
  flag, so no file in it can change the first message. In a process that imported lm2, the registered classes
  are used and ``auto_map`` is never read.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from lm2.train.config import task_weights
from lm2.viz.curves import results_table

LOADER_FILE = "lm2_loader.py"
LOADER_MESSAGE = ("this folder holds an lm2 model (LM2: Large Memory Models, arXiv 2502.06049), which transformers "
                  "cannot build on its own: install lm2 (pip install -e . in a clone of the lm2 repository), then "
                  "import lm2 before AutoModelForCausalLM.from_pretrained(folder)")
# transformers' check of a loader's imports skips those inside a try block, so LOADER_MESSAGE is what is shown.
LOADER_SOURCE = f'''"""Written by lm2 into each checkpoint folder; config.json's auto_map names it. See README.md."""

try:
    from lm2 import LM2Config, LM2ForCausalLM, LM2Model  # noqa: F401  (importing lm2 registers its model types)
    from lm2.rmt import RMTConfig, RMTForCausalLM  # noqa: F401
except ImportError as err:
    raise ImportError({LOADER_MESSAGE!r}) from err
'''
KINDS = {"lm2": "An LM2 model: a Llama-style decoder whose blocks carry a memory bank",
         "vanilla": "A vanilla model: LM2's Llama-style backbone without memory blocks",
         "rmt": "An RMT model: LM2's backbone with recurrent memory tokens (a baseline)"}
AUTO_MAPS = {  # model_type -> what transformers' Auto classes find in the loader
    "lm2": {"AutoConfig": "LM2Config", "AutoModel": "LM2Model", "AutoModelForCausalLM": "LM2ForCausalLM"},
    "lm2-rmt": {"AutoConfig": "RMTConfig", "AutoModelForCausalLM": "RMTForCausalLM"},
}


def add_loader(folder: str | Path) -> None:
    """Write ``lm2_loader.py`` into a saved model folder and name it in its ``config.json`` (``auto_map``)."""
    folder = Path(folder)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    names = AUTO_MAPS.get(config.get("model_type"))
    if names is None:  # not a model type lm2 defines: nothing of ours to name
        return
    config["auto_map"] = {auto: f"{Path(LOADER_FILE).stem}.{name}" for auto, name in names.items()}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (folder / LOADER_FILE).write_text(LOADER_SOURCE, encoding="utf-8")


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed: ``lm2 train CONFIG ...`` (also under ``python -m lm2`` or torchrun)."""
    return shlex.join(["lm2", *(sys.argv[1:] if argv is None else argv)])


def parameter_counts(model) -> dict[str, int]:
    """Parameters in all, in the memory modules (``.memory.``), and in the token embeddings and head."""
    total = memory = embedding = 0
    seen = set()
    for name, param in model.named_parameters():
        if id(param) in seen:  # a tied head is the embedding
            continue
        seen.add(id(param))
        total += param.numel()
        memory += param.numel() if ".memory." in name else 0
        embedding += param.numel() if name.endswith(("embed_tokens.weight", "lm_head.weight")) else 0
    return {"total": total, "memory": memory, "embedding": embedding}


def _data_line(cfg) -> str:
    d = cfg.data
    if d.task == "babilong":
        stages = "; ".join(f"{s['steps']} steps on {', '.join(map(str, s['lengths']))}" for s in d.curriculum)
        tasks, weights = ", ".join(d.babi_tasks), task_weights(d)  # the weights the stream draws by (1 if unnamed)
        if weights:
            tasks += " drawn by weight " + ", ".join(f"{t}: {w:g}" for t, w in zip(d.babi_tasks, weights))
        return (f"generated BABILong ({tasks}; bAbI facts in book text), loss on the "
                f"{'answer' if d.supervise == 'answer' else 'answers of whole stories'}; curriculum: {stages}")
    if d.task == "recall":
        stages = "; ".join(f"{s['steps']} steps with {s['distractors']} distractor segments" for s in d.curriculum)
        return f"the associative-recall diagnostic (lm2.data.recall, {d.recall or 'defaults'}); curriculum: {stages}"
    return f"packed text from {d.source} in blocks of {d.block_size} tokens (validation: {d.val_source})"


def _row(name: str, value: Any) -> str:
    return f"| {name} | {value} |"


def _cooldown(cfg) -> str:
    k = cfg.train.cooldown_steps
    return f", then linearly towards 0 over the last {k}" if k else ""


def model_card(model, cfg, step: int, tokens: int, records: list[dict], command: str | None,
               folder_name: str) -> str:
    """The README.md of a checkpoint: ``records`` are the run's metrics (metrics.jsonl) up to ``step``."""
    config = model.config
    counts = parameter_counts(model)
    values = config.to_dict()
    memory = {k: v for k, v in values.items() if k.startswith(("memory_", "rmt_"))}
    if getattr(config, "has_memory", False):
        memory["memory_layers"] = config.memory_layer_indices()
    else:  # the memory_* fields of a model without memory blocks describe nothing
        memory = {k: v for k, v in memory.items() if k.startswith("rmt_")}
    kind = "vanilla" if cfg.model.kind == "lm2" and not memory else cfg.model.kind  # no memory block: the backbone
    evals = [r for r in records if r.get("kind") == "eval" and r["step"] <= step]
    if not evals:
        evaluation = "No evaluation was recorded before this checkpoint."
    else:
        when = ("at this step" if evals[-1]["step"] == step else
                f"at step {evals[-1]['step']}, the last evaluation before this checkpoint")
        samples = (f" Accuracies are on {cfg.eval.samples} validation samples per task and length (a seed that "
                   "`lm2 eval` does not use)." if any(k.startswith("acc/") for k in evals[-1]) else "")
        evaluation = f"Recorded by lm2 {when} (metrics.jsonl of the run).{samples}\n\n```\n" + \
            results_table(evals) + "\n```"
    init = f"`{cfg.model.init_from}` (a pretrained Llama) plus memory" if cfg.model.init_from else \
        f"preset `{cfg.model.preset}`, random initialisation (seed {cfg.train.seed})"
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [lm2, memory]",
        "---",
        "",
        f"# {Path(cfg.out_dir).name}/{folder_name}",
        "",
        f"{KINDS[kind]} ({type(model).__name__.removeprefix('FSDP')}), trained by lm2, the reference "
        "implementation of LM2: Large Memory Models (Kang et al. 2025, [arXiv 2502.06049]"
        f"(https://arxiv.org/abs/2502.06049)). Checkpoint of step {step} of {cfg.total_steps()}.",
        "",
        "## Load it",
        "",
        "transformers knows the model type once lm2 is imported (install it with `pip install -e .` in a clone of "
        "the lm2 repository):",
        "",
        "```python",
        "import lm2  # registers the lm2 model types with transformers' Auto classes",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{folder_name}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{folder_name}")',
        "```",
        "",
        f"Without `import lm2`, `from_pretrained` refuses the folder; with `trust_remote_code=True` it runs "
        f"`{LOADER_FILE}`, which imports lm2 (or says to install it). From the command line: "
        f"`lm2 eval babilong --model {folder_name}`, `lm2 generate --model {folder_name} --prompt ...`.",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        _row("parameters", f"{counts['total']:,} ({counts['memory']:,} in the memory modules, "
                           f"{counts['embedding']:,} in the token embeddings and head)"),
        _row("backbone", f"{config.num_hidden_layers} blocks, hidden size {config.hidden_size}, MLP "
                         f"{config.intermediate_size}, {config.num_attention_heads} attention heads "
                         f"({config.num_key_value_heads} key-value), vocabulary {config.vocab_size}, attention "
                         f"window {config.sliding_window or 'none (full causal attention)'}"),
        _row("memory", ", ".join(f"{k} {v}" for k, v in memory.items()) or "none (no memory block)"),
        _row("initialised from", init),
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        _row("data", _data_line(cfg)),
        _row("tokenizer", f"`{cfg.data.tokenizer}` (saved in this folder)"),
        _row("steps", f"{step} of {cfg.total_steps()}, {cfg.train.batch_size} sequences per step, segments of "
                      f"{cfg.data.segment_length} tokens"),
        _row("tokens seen", f"{tokens:,} (padding not counted)"),
        _row("optimizer", f"AdamW, lr {cfg.train.lr:g} (cosine to {cfg.train.min_lr_ratio:g}x after "
                          f"{cfg.train.warmup_steps} warm-up steps{_cooldown(cfg)}), weight decay "
                          f"{cfg.train.weight_decay:g}, "
                          f"precision {cfg.train.precision}"),
        _row("command", f"`{command}`" if command else "`lm2.train.loop.train(cfg)` from Python"),
        "",
        f"The resolved config is `train_config.yaml` in this folder: `lm2 train train_config.yaml --resume` "
        f"continues the run in its out_dir (`{cfg.out_dir}`); with another `--out_dir` it trains the same model "
        "again.",
        "",
        "## Evaluation",
        "",
        evaluation,
        "",
    ]
    return "\n".join(lines)
