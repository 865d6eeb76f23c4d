"""MMLU by log-likelihood, with results laid out as the LM2 paper's Table 2 (categories and levels).

Two forms, both as lm-evaluation-harness defines them, so that ``check_mmlu_against_lm_eval`` (at the end) can
check our numbers against the harness on the same questions:

* "letter" (lm-eval's ``mmlu``): the question and its four choices labelled A-D, then "Answer:"; the prediction
  is the letter with the highest log-likelihood of " A", " B", " C", " D". What the LM2 paper reports.
* "cloze" (lm-eval's ``mmlu_continuation``): "Question: ...\\nAnswer:", and each choice's own text is scored;
  the prediction maximises the log-likelihood divided by the choice's length in characters (lm-eval's
  ``acc_norm``). Small models sit at chance in the letter form and above it here.

Every prompt starts with "The following are multiple choice questions (with answers) about <subject>.\\n\\n";
``shots`` solved examples are the first questions of the same subject other than the one asked (only the
test split ships offline; lm-eval's ``first_n`` sampler over the same split picks the same ones).

Tokenization follows lm-eval's: the context and the context + continuation are encoded with the tokenizer's
defaults and the continuation is what the second adds. Inputs that share all but their last token are run
once (a letter question costs one forward pass, not four).

``check_mmlu_against_lm_eval`` writes one local lm-eval task per MMLU subject (``dataset_path: json`` over the same
questions, the same prompt as here), runs the harness on the same model object (``lm2.eval.lm_eval_adapter.hflm``)
and compares: overall and per-subject accuracy, the prompts, and the per-question predictions.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lm2.eval.common import LoadedModel, appended_records, batched, quiet_lm_eval, write_json
from lm2.model_facts import check_fits

FORMS = ("letter", "cloze")
LETTERS = ("A", "B", "C", "D")


# ----------------------------------------------------------------------------- prompts


def description(subject: str) -> str:
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def question_text(q, form: str) -> str:
    if form == "letter":
        options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, q.choices))
        return f"{q.question.strip()}{options}\nAnswer:"
    return f"Question: {q.question.strip()}\nAnswer:"


def choice_texts(q, form: str) -> list[str]:
    return list(LETTERS) if form == "letter" else list(q.choices)


def fewshot_examples(q, subject_questions: Sequence[Any], shots: int) -> list[Any]:
    """The first ``shots`` questions of the subject other than ``q`` (by value, as lm-eval removes it)."""
    pool = [x for x in subject_questions if x != q]
    if shots > len(pool):
        raise ValueError(f"--shots {shots}: the subject {q.subject} has only {len(pool)} other questions")
    return pool[:shots]


def context_text(q, subject_questions: Sequence[Any], shots: int, form: str) -> str:
    """The whole prompt before the answer: description, solved examples, the question."""
    examples = "".join(f"{question_text(ex, form)} {choice_texts(ex, form)[ex.answer]}\n\n"
                       for ex in fewshot_examples(q, subject_questions, shots))
    return description(q.subject) + examples + question_text(q, form)


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's split of a (context, continuation) pair into token ids (trailing context spaces move over)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    ctx = tokenizer.encode(context)
    return list(ctx), list(whole[len(ctx) :])


# ----------------------------------------------------------------------------- log-likelihoods


@torch.no_grad()
def loglikelihoods(model, requests: Sequence[tuple[Sequence[int], Sequence[int]]], batch_size: int = 8,
                   progress: bool = False, desc: str = "log-likelihoods",
                   on_batch: Callable[[float], None] | None = None) -> list[float]:
    """Sum of log p(continuation | context) for each (context ids, continuation ids) request.

    The input of a request is (context + continuation)[:-1]; requests with the same input share one forward
    pass. Inputs are sorted by length and right-padded (a causal model's earlier positions never see the
    padding), and only the last positions that some request of the batch scores get logits. ``on_batch``, if
    given, is called after each forward pass with the fraction of the inputs done.
    """
    from tqdm import tqdm

    device = next(model.parameters()).device
    inputs: dict[tuple[int, ...], int] = {}
    keys = []
    for ctx, cont in requests:
        if not cont:
            raise ValueError("a continuation encoded to no tokens")
        if not ctx:
            raise ValueError("an empty context: the first continuation token would have nothing to condition on")
        seq = tuple(ctx) + tuple(cont[:-1])
        keys.append(inputs.setdefault(seq, len(inputs)))
    unique = list(inputs)
    check_fits(model, max(len(s) for s in unique), "an MMLU prompt")
    # Per unique input, the earliest position any of its requests scores.
    first_scored = [len(s) for s in unique]
    for (_ctx, cont), key in zip(requests, keys):
        first_scored[key] = min(first_scored[key], len(unique[key]) - len(cont))
    order = sorted(range(len(unique)), key=lambda i: -len(unique[i]))
    logprobs: dict[int, torch.Tensor] = {}  # unique index -> (positions from first_scored, V) log-probs
    done = 0
    for chunk in tqdm(list(batched(order, batch_size)), desc=desc, disable=not progress, unit="batch"):
        width = len(unique[chunk[0]])
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, : len(unique[i])] = torch.tensor(unique[i])
        keep = max(width - first_scored[i] for i in chunk)
        logits = model(ids.to(device), logits_to_keep=keep).logits  # (B, keep, V), positions width-keep..width-1
        logp = torch.log_softmax(logits.float(), dim=-1)
        for row, i in enumerate(chunk):
            start = first_scored[i] - (width - keep)
            logprobs[i] = logp[row, start : start + len(unique[i]) - first_scored[i]].cpu()
        done += len(chunk)
        if on_batch is not None:
            on_batch(done / len(unique))
    out = []
    for (_ctx, cont), key in zip(requests, keys):
        n = len(unique[key])
        offset = n - len(cont) - first_scored[key]  # index of the first scored position in logprobs[key]
        rows = logprobs[key][offset : offset + len(cont)]
        out.append(float(rows.gather(1, torch.tensor(list(cont))[:, None]).sum()))
    return out


# ----------------------------------------------------------------------------- evaluation


def score_questions(model, tokenizer, questions: Sequence[Any], shots: int = 0, form: str = "letter",
                    batch_size: int = 8, progress: bool = True, fewshot_pool: Sequence[Any] | None = None,
                    on_batch: Callable[[float], None] | None = None) -> list[dict]:
    """One record per question: subject, answer, the choices' log-likelihoods, prediction, correctness.

    Solved examples come from ``fewshot_pool`` (default: ``questions``), per subject; ``on_batch`` is passed to
    :func:`loglikelihoods`."""
    if form not in FORMS:
        raise ValueError(f"unknown MMLU form {form!r}: choose one of {', '.join(FORMS)}")
    if shots < 0:
        raise ValueError(f"--shots {shots} is invalid: it must be 0 or more")
    by_subject: dict[str, list[Any]] = defaultdict(list)
    for q in questions if fewshot_pool is None else fewshot_pool:
        by_subject[q.subject].append(q)
    requests, owners = [], []
    for index, q in enumerate(questions):
        context = context_text(q, by_subject[q.subject], shots, form)
        for choice in choice_texts(q, form):
            requests.append(encode_pair(tokenizer, context, " " + choice))
            owners.append(index)
    lls = loglikelihoods(model, requests, batch_size, progress, desc=f"MMLU ({form}, {shots}-shot)", on_batch=on_batch)
    records = []
    for index, q in enumerate(questions):
        ll = lls[4 * index : 4 * index + 4]
        if form == "letter":
            pred = max(range(4), key=lambda c: ll[c])
        else:  # lm-eval's acc_norm: log-likelihood per character of the choice
            pred = max(range(4), key=lambda c: ll[c] / max(1, len(q.choices[c])))
        records.append({"subject": q.subject, "answer": q.answer, "pred": pred, "correct": pred == q.answer,
                        "loglikelihoods": [round(x, 4) for x in ll]})
    return records


def summarize(records: Sequence[dict]) -> dict:
    """Accuracy (percent) by subject, by category and by level (the LM2 paper's Table 2), and on average.

    Category, level and the average count every question once (lm-eval's size-weighted group mean);
    ``macro_average`` is the unweighted mean over subjects."""
    from lm2.data.mmlu import CATEGORIES, LEVELS, SUBJECT_CATEGORY, SUBJECT_LEVEL

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


def format_check(check: dict) -> str:
    """One line comparing lm2 with lm-evaluation-harness (``lm_eval_check`` of a summary), plus a DISAGREE line
    when the averages differ by more than the tolerance."""
    line = (f"lm-evaluation-harness: {check['lm_eval']:.2f}  lm2: {check['lm2']:.2f}  difference "
            f"{check['difference']:+.2f} points over {check['questions']} questions; prompts differing: "
            f"{check['prompt_mismatches']}, predictions differing: {check['prediction_mismatches']}, largest "
            f"log-likelihood difference {check['max_loglikelihood_difference']:.2e}")
    if not check["agree"]:
        line += f"\nDISAGREE: the two differ by more than {check['tolerance']} points"
    return line


def evaluate_mmlu(loaded: LoadedModel, shots: int = 0, subjects: Sequence[str] | None = None, form: str = "letter",
                  limit: int | None = None, batch_size: int = 8, out_dir: str | os.PathLike | None = None,
                  progress: bool = True, check_lm_eval: bool = False, reuse: bool = False,
                  resume: bool = False) -> dict:
    """Evaluate a loaded model on MMLU; returns the summary (also written to ``out_dir`` with the per-question
    records). ``limit`` keeps the first N questions of each subject. ``check_lm_eval`` also runs
    lm-evaluation-harness on the same questions and model and compares it with these records (the summary's
    ``lm_eval_check``, see ``compare_with_lm_eval``). ``reuse`` takes lm2's scores from
    an earlier run in ``out_dir`` with the same settings instead of scoring again (see ``load_saved_run``).

    Questions are scored subject by subject; with ``out_dir`` each finished subject's records are appended to
    ``mmlu_<form>_<shots>shot.partial.jsonl`` (removed once the results are written), and ``resume`` keeps the
    subjects an interrupted run finished (same model, form, shots, limit and questions) and scores the rest; on a
    run that finished, it takes the saved scores as ``reuse`` does."""
    from lm2.data.mmlu import load_mmlu

    pool = load_mmlu(subjects)
    questions = select_questions(pool, limit)
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
        summary, records = load_saved_run(out_dir, loaded, questions, form, shots, limit)
    else:
        start = time.perf_counter()
        records, reused = score_by_subject(loaded, questions, pool, shots, form, limit, batch_size, progress,
                                           out_dir, resume)
        seconds = time.perf_counter() - start
        summary = {"model": str(loaded.path), "model_kind": loaded.kind, "form": form, "shots": shots,
                   "limit": limit, "batch_size": batch_size, "device": str(next(loaded.model.parameters()).device),
                   "seconds": round(seconds, 2), "seconds_per_question": round(seconds / max(1, len(questions)), 4),
                   **({"reused_questions": reused} if resume else {}), **summarize(records)}
        # Written before the lm-eval check (which takes about as long again), so stopping it loses no scores.
        if out_dir is not None:
            write_results(out_dir, summary, records)
            partial_file(out_dir, form, shots).unlink(missing_ok=True)
    if check_lm_eval:
        start = time.perf_counter()
        log = None if progress else Path(out_dir) / "lm_eval.log" if out_dir is not None else os.devnull
        with quiet_lm_eval(log):
            summary["lm_eval_check"] = compare_with_lm_eval(loaded.model, loaded.tokenizer, pool, records, shots,
                                                            form, limit, batch_size)
        summary["lm_eval_check"]["seconds"] = round(time.perf_counter() - start, 2)
        if out_dir is not None:
            write_json(result_files(out_dir, form, shots)[0], summary)
    return summary


def score_by_subject(loaded: LoadedModel, questions: Sequence[Any], pool: Sequence[Any], shots: int, form: str,
                     limit: int | None, batch_size: int, progress: bool, out_dir: str | os.PathLike | None,
                     resume: bool) -> tuple[list[dict], int]:
    """``score_questions`` one subject at a time, saving each finished subject when there is an ``out_dir``;
    returns the records in the order of ``questions`` and how many of them an earlier run had saved."""
    from tqdm import tqdm

    groups: dict[str, list[Any]] = {}
    for q in questions:
        groups.setdefault(q.subject, []).append(q)
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
    reused = sum(len(records) for records in done.values())
    bar = tqdm(total=len(questions), initial=reused, unit="question", desc=f"MMLU ({form}, {shots}-shot)",
               disable=not progress, dynamic_ncols=True)
    for subject, subject_questions in groups.items():
        if subject in done:
            continue
        bar.set_postfix_str(subject)
        start = bar.n

        def advance(fraction: float, start: int = start, n: int = len(subject_questions)) -> None:
            bar.update(start + int(fraction * n) - bar.n)  # the bar moves within a subject, batch by batch

        done[subject] = score_questions(loaded.model, loaded.tokenizer, subject_questions, shots, form, batch_size,
                                        False, pool, on_batch=advance)
        if partial is not None:
            with open(partial, "a", encoding="utf-8") as f:
                f.write(json.dumps({"subject": subject, "settings": settings, "records": done[subject]}) + "\n")
        bar.update(start + len(subject_questions) - bar.n)
    bar.close()
    ordered = {subject: iter(records) for subject, records in done.items()}
    return [next(ordered[q.subject]) for q in questions], reused


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
    from lm2.data.corpora import jsonl_records

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


# ----------------------------------------------------------------------------- the check against lm-evaluation-harness

# lm-eval's YAML templates of its own mmlu / mmlu_continuation tasks, which the prompts above reproduce.
_DOC_TO_TEXT = {
    "letter": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}"
              "\nAnswer:",
    "cloze": "Question: {{question.strip()}}\nAnswer:",
}
_DOC_TO_CHOICE = {"letter": ["A", "B", "C", "D"], "cloze": "{{choices}}"}
_METRIC = {"letter": "acc", "cloze": "acc_norm"}


def task_name(form: str, subject: str) -> str:
    return f"lm2_mmlu_{form}_{subject}"


def write_mmlu_tasks(questions: Sequence[Any], form: str, folder: str | Path) -> list[str]:
    """One lm-eval task YAML and one JSON-lines data file per subject in ``folder``; returns the task names.

    Few-shot examples come from the same split with the ``first_n`` sampler: lm-eval then drops the question
    being asked from the pool, exactly as ``fewshot_examples`` does."""
    import yaml

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


def run_lm_eval_mmlu(model: Any, tokenizer: Any, questions: Sequence[Any], shots: int = 0, form: str = "letter",
                     limit: int | None = None, batch_size: int = 8) -> dict:
    """Run lm-evaluation-harness on ``questions`` (all questions of each subject present: they are the few-shot
    pool; ``limit`` evaluates the first N per subject). Returns per subject {acc, n, preds, contexts}."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from lm2.eval.lm_eval_adapter import hflm

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
    selected = select_questions(questions, limit)
    records = score_questions(model, tokenizer, selected, shots, form, batch_size, progress, questions)
    return compare_with_lm_eval(model, tokenizer, questions, records, shots, form, limit, batch_size, tolerance)


def compare_with_lm_eval(model: Any, tokenizer: Any, questions: Sequence[Any], records: Sequence[dict],
                         shots: int = 0, form: str = "letter", limit: int | None = None, batch_size: int = 8,
                         tolerance: float = 0.5) -> dict:
    """Run lm-evaluation-harness on ``questions`` and compare it with lm2's ``records`` of the same questions
    (``score_questions`` of ``select_questions(questions, limit)``): both overall accuracies, their
    difference, per-subject accuracies, how many prompts and predictions differ, and the largest difference of a
    choice's log-likelihood. ``agree`` is whether the overall accuracies are within ``tolerance`` points."""
    selected = select_questions(questions, limit)
    if len(records) != len(selected):
        raise ValueError(f"{len(records)} records for {len(selected)} selected questions")
    ours = summarize(records)
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
            prompt_mismatches += context != context_text(q, pool[subject], shots, form)
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
