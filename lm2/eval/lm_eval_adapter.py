"""lm2 models inside lm-evaluation-harness.

``hflm(model, tokenizer)`` wraps any loaded causal LM (LM2, vanilla, RMT or a plain HF model) as lm-eval's
``HFLM``, in process: lm2's model types need no ``trust_remote_code`` and no hub access::

    from lm_eval import simple_evaluate  # optional: lm_eval (the eval extra)
    from lm2.eval.common import load_model
    from lm2.eval.lm_eval_adapter import hflm

    loaded = load_model("path/to/checkpoint")
    results = simple_evaluate(model=hflm(loaded.model, loaded.tokenizer), tasks=[...], task_manager=...)

``evaluate_harness`` runs any harness task or group on a loaded model (``lm2 eval harness``), and
``register_lm2`` makes lm2's loader the harness model type "lm2" (``simple_evaluate(model="lm2",
model_args="pretrained=CKPT")``).

``lm2 eval mmlu`` scores MMLU through ``hflm`` too (``lm2.eval.mmlu.run_lm_eval_mmlu``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm2.eval.common import load_model


def hflm(model: Any, tokenizer: Any, batch_size: int = 8, **kwargs: Any):
    """lm-eval's ``HFLM`` around an in-memory causal LM (its device is the model's)."""
    from lm_eval.models.huggingface import HFLM  # optional: lm_eval (the eval extra)

    return HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size, **kwargs)


LM_EVAL_VERSION = "0.4.13"  # the version lm2 is tested with (pyproject.toml's eval extra)


def require_lm_eval() -> None:
    """ValueError with the install command when lm-evaluation-harness is missing (it is an optional extra)."""
    try:
        import lm_eval  # noqa: F401  (optional: lm_eval, the eval extra)
    except ImportError:
        raise ValueError(f"this needs lm-evaluation-harness: pip install lm_eval=={LM_EVAL_VERSION} (or "
                         f"pip install -e \".[eval]\" in lm2's checkout)") from None


def register_lm2() -> None:
    """Register lm2's model loader with lm-eval as the model type "lm2": ``simple_evaluate(model="lm2",
    model_args="pretrained=CKPT,device=cpu,batch_size=8")`` then loads any checkpoint ``lm2.eval.common.load_model``
    loads (LM2, vanilla, RMT, plain HF; ``tokenizer=`` overrides its tokenizer), in process, as ``hflm`` wraps it."""
    require_lm_eval()
    from lm_eval.api.registry import MODEL_REGISTRY, register_model  # optional: lm_eval (the eval extra)
    from lm_eval.models.huggingface import HFLM  # optional: lm_eval (the eval extra)

    if "lm2" in MODEL_REGISTRY.keys():
        return

    @register_model("lm2")
    class LM2HarnessModel(HFLM):
        def __init__(self, pretrained: str, tokenizer: str | None = None, device: str = "cpu", batch_size=8,
                     **kwargs: Any):
            loaded = load_model(pretrained, device=device, tokenizer=tokenizer)
            super().__init__(pretrained=loaded.model, tokenizer=loaded.tokenizer, backend="causal",
                             batch_size=batch_size, **kwargs)


def task_manager(include_path: str | Path | None = None, include_defaults: bool = True):
    """lm-eval's TaskManager over its own tasks and the task YAMLs in ``include_path`` (a folder), whose loading
    errors (offline, a task's data not found) are one ValueError naming the tasks."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager  # optional: lm_eval (the eval extra)

    if include_path is not None and not Path(include_path).is_dir():
        raise ValueError(f"--include-path {include_path} is not a folder: give a folder of lm-eval task YAML files")

    class Tasks(TaskManager):
        def load(self, tasks):
            try:
                return super().load(tasks)
            except Exception as err:  # datasets and lm-eval raise many types (connection, not found, YAML)
                names = ", ".join(t if isinstance(t, str) else type(t).__name__ for t in tasks)
                raise ValueError(f"lm-eval could not load {names}: {str(err).splitlines()[0] if str(err) else err!r} "
                                 "(the harness reads a task's data from the Hugging Face Hub or its cache; "
                                 "offline, give tasks over local files with --include-path)") from err

    return Tasks(include_path=str(include_path) if include_path is not None else None,
                 include_defaults=include_defaults)


def task_list(spec: str | Sequence[str]) -> list[str]:
    """Task names from "arc_easy,hellaswag" or a list; ValueError for none."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise ValueError(f"no tasks in {spec!r}: --tasks takes lm-eval task or group names, e.g. arc_easy,hellaswag")
    return names


def match_tasks(manager: Any, names: str | Sequence[str]) -> list[str]:
    """The harness tasks and groups that ``names`` (names or glob patterns) select; ValueError naming any that
    selects none."""
    names = task_list(names)
    unknown = [n for n in names if not manager.match_tasks([n])]
    if unknown:
        raise ValueError(f"unknown lm-eval task {', '.join(unknown)}: `lm-eval ls tasks` lists the harness's tasks "
                         "and groups; a task of your own is a YAML file in a folder given with --include-path")
    matched: list[str] = []
    for name in names:
        matched += [m for m in manager.match_tasks([name]) if m not in matched]
    return matched


def evaluate_harness(loaded: Any, tasks: Sequence[str], num_fewshot: int | None = None,
                     limit: int | float | None = None, batch_size: int = 8, include_path: str | Path | None = None,
                     log_samples: bool = False, apply_chat_template: bool = False, gen_kwargs: str | None = None,
                     out_dir: str | Path | None = None, manager: Any = None) -> dict:
    """Run lm-evaluation-harness tasks on a loaded model (``lm2.eval.common.LoadedModel``) and return the
    harness's results dict; the options mean what they mean to ``lm_eval.simple_evaluate`` (``limit``: the first
    N documents of each task, or a fraction below 1). With ``out_dir``, write ``results.json`` (the results, what
    was run, on which model) and, with ``log_samples``, ``samples_<task>.jsonl`` (each document's prompt,
    responses and scores)."""
    from lm_eval import simple_evaluate  # optional: lm_eval (the eval extra)

    manager = manager if manager is not None else task_manager(include_path)
    names = match_tasks(manager, tasks)
    results = simple_evaluate(model=hflm(loaded.model, loaded.tokenizer, batch_size), tasks=names,
                              num_fewshot=num_fewshot, limit=limit, task_manager=manager, log_samples=log_samples,
                              apply_chat_template=apply_chat_template, gen_kwargs=gen_kwargs, verbosity="WARNING")
    results["lm2"] = {"model": str(loaded.path), "model_kind": loaded.kind, "tasks": names,
                      "include_path": str(include_path) if include_path is not None else None,
                      "num_fewshot": num_fewshot, "limit": limit, "batch_size": batch_size}
    if out_dir is not None:
        write_harness_results(out_dir, results)
    return results


def write_harness_results(out_dir: str | Path, results: dict) -> Path:
    """``results.json`` (everything but the per-document samples) and one ``samples_<task>.jsonl`` per task
    when the results hold samples."""
    from lm_eval.utils import handle_non_serializable  # optional: lm_eval (the eval extra)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in results.items() if k != "samples"}
    path = out_dir / "results.json"
    path.write_text(json.dumps(summary, indent=2, default=handle_non_serializable, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    for task, samples in results.get("samples", {}).items():
        with open(out_dir / f"samples_{task}.jsonl", "w", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps(sample, default=handle_non_serializable, ensure_ascii=False) + "\n")
    return path
