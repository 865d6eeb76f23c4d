"""lm2 models inside lm-evaluation-harness, and the check that our MMLU numbers equal the harness's.

``hflm(model, tokenizer)`` wraps any loaded causal LM (LM2, vanilla, RMT or a plain HF model) as lm-eval's
``HFLM``, in process: lm2's model types need no ``trust_remote_code`` and no hub access::

    from lm_eval import simple_evaluate
    from lm2.eval.common import load_model
    from lm2.eval.lm_eval_adapter import hflm

    loaded = load_model("path/to/checkpoint")
    results = simple_evaluate(model=hflm(loaded.model, loaded.tokenizer), tasks=[...], task_manager=...)

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
