"""lm2 models inside lm-evaluation-harness, and the check that our MMLU numbers equal the harness's.

``hflm(model, tokenizer)`` wraps any loaded causal LM (LM2, vanilla, RMT or a plain HF model) as lm-eval's
``HFLM``, in process: lm2's model types need no ``trust_remote_code`` and no hub access::

    from lm_eval import simple_evaluate
    from lm2.eval.common import load_model
    from lm2.eval.lm_eval_adapter import hflm

    loaded = load_model("path/to/checkpoint")
    results = simple_evaluate(model=hflm(loaded.model, loaded.tokenizer), tasks=[...], task_manager=...)

``evaluate_harness`` runs any harness task or group on a loaded model (``lm2 eval harness``), and
``register_lm2`` makes lm2's loader the harness model type "lm2" (``simple_evaluate(model="lm2",
model_args="pretrained=CKPT")``).

``check_mmlu_against_lm_eval`` writes one local lm-eval task per MMLU subject (``dataset_path: json`` over
the same questions, the same prompt as ``lm2.eval.mmlu``), runs the harness on the same model object and
compares: overall and per-subject accuracy, the prompts, and the per-question predictions.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lm2.eval import mmlu

# lm-eval's YAML templates of its own mmlu / mmlu_continuation tasks, which lm2.eval.mmlu reproduces.
_DOC_TO_TEXT = {
    "letter": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}"
              "\nAnswer:",
    "cloze": "Question: {{question.strip()}}\nAnswer:",
}
_DOC_TO_CHOICE = {"letter": ["A", "B", "C", "D"], "cloze": "{{choices}}"}
_METRIC = {"letter": "acc", "cloze": "acc_norm"}


def hflm(model: Any, tokenizer: Any, batch_size: int = 8, **kwargs: Any):
    """lm-eval's ``HFLM`` around an in-memory causal LM (its device is the model's)."""
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model, tokenizer=tokenizer, backend="causal", batch_size=batch_size, **kwargs)


LM_EVAL_VERSION = "0.4.13"  # the version lm2 is tested with (pyproject.toml's eval extra)


def require_lm_eval() -> None:
    """ValueError with the install command when lm-evaluation-harness is missing (it is an optional extra)."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ValueError(f"this needs lm-evaluation-harness: pip install lm_eval=={LM_EVAL_VERSION} (or "
                         f"pip install -e \".[eval]\" in lm2's checkout)") from None


def register_lm2() -> None:
    """Register lm2's model loader with lm-eval as the model type "lm2": ``simple_evaluate(model="lm2",
    model_args="pretrained=CKPT,device=cpu,batch_size=8")`` then loads any checkpoint ``lm2.eval.common.load_model``
    loads (LM2, vanilla, RMT, plain HF; ``tokenizer=`` overrides its tokenizer), in process, as ``hflm`` wraps it."""
    require_lm_eval()
    from lm_eval.api.registry import MODEL_REGISTRY, register_model
    from lm_eval.models.huggingface import HFLM

    if "lm2" in MODEL_REGISTRY.keys():
        return

    @register_model("lm2")
    class LM2HarnessModel(HFLM):
        def __init__(self, pretrained: str, tokenizer: str | None = None, device: str = "cpu", batch_size=8,
                     **kwargs: Any):
            from lm2.eval.common import load_model

            loaded = load_model(pretrained, device=device, tokenizer=tokenizer)
            super().__init__(pretrained=loaded.model, tokenizer=loaded.tokenizer, backend="causal",
                             batch_size=batch_size, **kwargs)


def task_manager(include_path: str | Path | None = None, include_defaults: bool = True):
    """lm-eval's TaskManager over its own tasks and the task YAMLs in ``include_path`` (a folder), whose loading
    errors (offline, a task's data not found) are one ValueError naming the tasks."""
    require_lm_eval()
    from lm_eval.tasks import TaskManager

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
    from lm_eval import simple_evaluate

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
    from lm_eval.utils import handle_non_serializable

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


def task_name(form: str, subject: str) -> str:
    return f"lm2_mmlu_{form}_{subject}"


def write_mmlu_tasks(questions: Sequence[Any], form: str, folder: str | Path) -> list[str]:
    """One lm-eval task YAML and one JSON-lines data file per subject in ``folder``; returns the task names.

    Few-shot examples come from the same split with the ``first_n`` sampler: lm-eval then drops the question
    being asked from the pool, exactly as ``lm2.eval.mmlu.fewshot_examples`` does."""
    import yaml

    if form not in mmlu.FORMS:
        raise ValueError(f"unknown MMLU form {form!r}: choose one of {', '.join(mmlu.FORMS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_subject: dict[str, list[Any]] = {}
    for q in questions:
        by_subject.setdefault(q.subject, []).append(q)
    names = []
    for subject, items in by_subject.items():
        data = folder / f"{subject}.jsonl"
        with open(data, "w", encoding="utf-8") as f:
            for q in items:
                f.write(json.dumps({"subject": q.subject, "question": q.question, "choices": list(q.choices),
                                    "answer": q.answer}) + "\n")
        name = task_name(form, subject)
        task = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test",
            "fewshot_split": "test",
            "fewshot_config": {"sampler": "first_n"},
            "output_type": "multiple_choice",
            "description": mmlu.description(subject),
            "doc_to_text": _DOC_TO_TEXT[form],
            "doc_to_choice": _DOC_TO_CHOICE[form],
            "doc_to_target": "answer",
            "metric_list": [{"metric": _METRIC[form], "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0},
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False, allow_unicode=True))
        names.append(name)
    return names


def run_lm_eval_mmlu(model: Any, tokenizer: Any, questions: Sequence[Any], shots: int = 0, form: str = "letter",
                     limit: int | None = None, batch_size: int = 8) -> dict:
    """Run lm-evaluation-harness on ``questions`` (all questions of each subject present: they are the few-shot
    pool; ``limit`` evaluates the first N per subject). Returns per subject {acc, n, preds, contexts}."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    metric = _METRIC[form]
    with tempfile.TemporaryDirectory(prefix="lm2-lm-eval-") as folder:
        names = write_mmlu_tasks(questions, form, folder)
        manager = TaskManager(include_path=folder, include_defaults=False)
        results = simple_evaluate(model=hflm(model, tokenizer, batch_size), tasks=names, num_fewshot=shots,
                                  limit=limit, task_manager=manager, log_samples=True, bootstrap_iters=0,
                                  verbosity="WARNING")
    out = {}
    for name in names:
        subject = name[len(task_name(form, "")) :]
        samples = sorted(results["samples"][name], key=lambda s: s["doc_id"])
        preds, all_lls = [], []
        for s in samples:
            lls = [float(r[0]) for r in s["filtered_resps"]]
            all_lls.append(lls)
            if form == "letter":
                preds.append(max(range(len(lls)), key=lambda c: lls[c]))
            else:
                choices = s["doc"]["choices"]
                preds.append(max(range(len(lls)), key=lambda c: lls[c] / max(1, len(choices[c]))))
        out[subject] = {
            "acc": 100.0 * results["results"][name][f"{metric},none"],
            "n": len(samples),
            "preds": preds,
            "loglikelihoods": all_lls,
            "contexts": [s["arguments"][0][0] for s in samples],
        }
    return out


def check_mmlu_against_lm_eval(model: Any, tokenizer: Any, questions: Sequence[Any], shots: int = 0,
                               form: str = "letter", limit: int | None = None, batch_size: int = 8,
                               tolerance: float = 0.5, progress: bool = False) -> dict:
    """Score ``questions`` with lm2's MMLU code and with lm-evaluation-harness on the same model, and compare
    (see ``compare_with_lm_eval``). ``questions`` are whole subjects (the few-shot pool); ``limit`` scores the
    first N of each."""
    selected = mmlu.select_questions(questions, limit)
    records = mmlu.score_questions(model, tokenizer, selected, shots, form, batch_size, progress, questions)
    return compare_with_lm_eval(model, tokenizer, questions, records, shots, form, limit, batch_size, tolerance)


def compare_with_lm_eval(model: Any, tokenizer: Any, questions: Sequence[Any], records: Sequence[dict],
                         shots: int = 0, form: str = "letter", limit: int | None = None, batch_size: int = 8,
                         tolerance: float = 0.5) -> dict:
    """Run lm-evaluation-harness on ``questions`` and compare it with lm2's ``records`` of the same questions
    (``lm2.eval.mmlu.score_questions`` of ``select_questions(questions, limit)``): both overall accuracies, their
    difference, per-subject accuracies, how many prompts and predictions differ, and the largest difference of a
    choice's log-likelihood. ``agree`` is whether the overall accuracies are within ``tolerance`` points."""
    selected = mmlu.select_questions(questions, limit)
    if len(records) != len(selected):
        raise ValueError(f"{len(records)} records for {len(selected)} selected questions")
    ours = mmlu.summarize(records)
    theirs = run_lm_eval_mmlu(model, tokenizer, questions, shots, form, limit, batch_size)

    by_subject: dict[str, list[tuple[Any, dict]]] = {}
    for q, r in zip(selected, records):
        by_subject.setdefault(q.subject, []).append((q, r))
    pool: dict[str, list[Any]] = {}
    for q in questions:
        pool.setdefault(q.subject, []).append(q)
    prompt_mismatches = pred_mismatches = 0
    ll_difference = 0.0
    subjects = {}
    for subject, pairs in by_subject.items():
        other = theirs[subject]
        if other["n"] != len(pairs):
            raise RuntimeError(f"lm-eval scored {other['n']} {subject} questions, lm2 {len(pairs)}")
        for (q, r), context, pred, lls in zip(pairs, other["contexts"], other["preds"], other["loglikelihoods"]):
            prompt_mismatches += context != mmlu.context_text(q, pool[subject], shots, form)
            pred_mismatches += pred != r["pred"]
            ll_difference = max(ll_difference, *(abs(a - b) for a, b in zip(lls, r["loglikelihoods"])))
        subjects[subject] = {"lm2": ours["subjects"][subject]["acc"], "lm_eval": other["acc"], "n": len(pairs)}
    return {
        "form": form, "shots": shots, "limit": limit, **overall_agreement(subjects, ours["average"]["acc"], tolerance),
        "prompt_mismatches": prompt_mismatches, "prediction_mismatches": pred_mismatches,
        "max_loglikelihood_difference": ll_difference,
        "subjects": subjects,
    }


def overall_agreement(subjects: dict[str, dict], lm2_average: float, tolerance: float) -> dict:
    """The overall part of a check, from per-subject results ({"lm_eval": accuracy, "n": questions} each) and
    lm2's average over the same questions: lm-eval's question-weighted average, the difference, and ``agree``
    (within ``tolerance`` points)."""
    n = sum(v["n"] for v in subjects.values())
    lm_eval_average = sum(v["lm_eval"] * v["n"] for v in subjects.values()) / n
    difference = lm2_average - lm_eval_average
    return {"questions": n, "lm2": lm2_average, "lm_eval": lm_eval_average, "difference": difference,
            "agree": abs(difference) <= tolerance, "tolerance": tolerance}
