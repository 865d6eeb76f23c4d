"""MMLU through lm-evaluation-harness: the harness's records against log-likelihoods computed here one forward
pass at a time, rigged models on hand-made questions, the Table 2 grouping, resuming and reusing runs, and the
scripts over the results."""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from helpers import load_script

from lm2.data.mmlu import CATEGORIES, LEVELS, SUBJECT_CATEGORY, SUBJECT_LEVEL, MMLUQuestion
from lm2.eval.mmlu import summarize, table2

needs_lm_eval = pytest.mark.skipif(importlib.util.find_spec("lm_eval") is None,
                                   reason="scoring needs lm-evaluation-harness (pip install -e '.[eval]')")

HAND_MADE = [
    MMLUQuestion("high_school_physics", "What falls faster in a vacuum?", ["a feather", "a stone", "both alike",
                                                                          "neither"], 2),
    MMLUQuestion("high_school_physics", "What is the unit of force?", ["newton", "joule", "watt", "pascal"], 0),
    MMLUQuestion("college_chemistry", "What is the symbol of sodium?", ["S", "Na", "So", "N"], 1),
    MMLUQuestion("philosophy", "Who wrote the Republic?", ["Aristotle", "Plato", "Kant", "Hume"], 1),
    MMLUQuestion("professional_law", "Which court is highest in the US?", ["district", "appeals", "supreme",
                                                                           "state"], 2),
    MMLUQuestion("marketing", "What are the four Ps?", ["product, price, place, promotion", "people", "plans",
                                                        "profit"], 0),
    MMLUQuestion("sociology", "Who wrote Suicide (1897)?", ["Weber", "Marx", "Comte", "Durkheim"], 3),
]


def harness_records(model, tokenizer, questions, form, shots=0):
    """lm2's records of ``questions`` (whole subjects) from the harness, in order."""
    from lm2.eval.lm_eval_adapter import hflm
    from lm2.eval.mmlu import run_lm_eval_mmlu

    by_subject = run_lm_eval_mmlu(hflm(model, tokenizer, 8), questions, shots, form)
    ordered = {subject: iter(records) for subject, records in by_subject.items()}
    return [next(ordered[q.subject]) for q in questions]


def reference_prompt(q, pool, shots, form):
    """The MMLU prompt written out here: lm-eval's mmlu (letter) or mmlu_continuation (cloze) template, with the
    subject's first ``shots`` other questions solved before it."""
    def text(x):
        if form == "letter":
            return x.question.strip() + "".join(f"\n{k}. {c}" for k, c in zip("ABCD", x.choices)) + "\nAnswer:"
        return f"Question: {x.question.strip()}\nAnswer:"

    def target(x):
        return "ABCD"[x.answer] if form == "letter" else x.choices[x.answer]

    examples = [x for x in pool if x.subject == q.subject and x != q][:shots]
    return (f"The following are multiple choice questions (with answers) about {q.subject.replace('_', ' ')}.\n\n"
            + "".join(f"{text(x)} {target(x)}\n\n" for x in examples) + text(q))


@needs_lm_eval
@pytest.mark.parametrize(("form", "shots"), [("letter", 0), ("cloze", 1), ("letter", 2)])
def test_records_equal_a_direct_log_likelihood_computation(form, shots, gpt2, tmp_path):
    """The records `evaluate_mmlu` writes: each choice's log-likelihood is the one computed here with one
    unbatched forward pass over the prompt written out here; the prediction is the letter form's most likely
    choice, the cloze form's most likely per character."""
    from helpers import direct_loglikelihood, memory_model

    from lm2.data.mmlu import load_mmlu
    from lm2.eval.common import LoadedModel
    from lm2.eval.mmlu import evaluate_mmlu, read_results

    model = memory_model(vocab_size=len(gpt2))
    loaded = LoadedModel(model=model, tokenizer=gpt2, path=tmp_path, name="tiny")
    subjects, limit = ["anatomy", "virology"], 2
    summary = evaluate_mmlu(loaded, shots=shots, subjects=subjects, form=form, limit=limit, batch_size=3,
                            out_dir=tmp_path / "out", progress=False)
    _, records = read_results(tmp_path / "out", form, shots)
    pool = load_mmlu(subjects)
    questions = [q for i, q in enumerate(pool) if [x.subject for x in pool[:i]].count(q.subject) < limit]
    assert len(records) == len(questions) == summary["average"]["n"] == 4
    for q, r in zip(questions, records):
        context = reference_prompt(q, pool, shots, form)
        choices = "ABCD" if form == "letter" else q.choices
        lls = [direct_loglikelihood(model, gpt2, context, " " + c) for c in choices]
        per = [1] * 4 if form == "letter" else [len(c) for c in q.choices]
        pred = max(range(4), key=lambda c: lls[c] / per[c])
        assert list(r) == ["subject", "answer", "pred", "correct", "loglikelihoods"]
        assert (r["subject"], r["answer"], r["pred"], r["correct"]) == (q.subject, q.answer, pred, pred == q.answer)
        assert r["loglikelihoods"] == [round(x, 4) for x in r["loglikelihoods"]]  # written to 4 decimals
        assert r["loglikelihoods"] == pytest.approx(lls, abs=2e-4)
    assert summary["average"]["acc"] == pytest.approx(100.0 * sum(r["correct"] for r in records) / 4)
    assert len(set(map(tuple, (r["loglikelihoods"] for r in records)))) == 4  # not a degenerate model


@needs_lm_eval
@pytest.mark.parametrize("letter", ["A", "B", "C", "D"])
def test_a_model_that_prefers_one_letter_scores_that_letters_share(letter, gpt2, letter_lm):
    token = gpt2.encode(" " + letter)[0]
    records = harness_records(letter_lm(len(gpt2), token), gpt2, HAND_MADE, "letter")
    assert all(r["pred"] == "ABCD".index(letter) for r in records)
    summary = summarize(records)
    expected = [q.answer == "ABCD".index(letter) for q in HAND_MADE]
    assert summary["average"]["acc"] == pytest.approx(100.0 * sum(expected) / len(expected))
    for category, v in summary["categories"].items():
        in_category = [e for q, e in zip(HAND_MADE, expected) if SUBJECT_CATEGORY[q.subject] == category]
        assert v["n"] == len(in_category) and v["acc"] == pytest.approx(100.0 * sum(in_category) / len(in_category))
    assert summary["levels"]["High School"]["n"] == 2 and summary["levels"]["General Knowledge"]["n"] == 3
    text = table2(summary)
    assert "Category" in text and "Level" in text and "Average" in text


@needs_lm_eval
def test_cloze_form_normalises_by_characters(gpt2, letter_lm):
    """A uniform model gives each choice -(tokens * log V); the prediction maximises that per character."""
    from helpers import encode_pair

    records = harness_records(letter_lm(len(gpt2)), gpt2, HAND_MADE, "cloze")
    for q, r in zip(HAND_MADE, records):
        context = reference_prompt(q, HAND_MADE, 0, "cloze")
        lls = [-len(encode_pair(gpt2, context, " " + c)[1]) * math.log(len(gpt2)) for c in q.choices]
        assert r["loglikelihoods"] == pytest.approx(lls, abs=1e-3)
        assert r["pred"] == max(range(4), key=lambda c: lls[c] / len(q.choices[c]))


def test_bad_shots_and_forms_are_refused_before_scoring(gpt2, tmp_path):
    from lm2.eval.common import LoadedModel
    from lm2.eval.mmlu import check_settings, evaluate_mmlu

    with pytest.raises(ValueError, match="high_school_physics has only 1 other"):
        check_settings(HAND_MADE, 2, "letter")
    check_settings(HAND_MADE[:2], 1, "letter")
    with pytest.raises(ValueError, match="unknown MMLU form 'essay'"):
        check_settings(HAND_MADE, 0, "essay")
    with pytest.raises(ValueError, match="--shots -1"):
        check_settings(HAND_MADE, -1, "letter")
    loaded = LoadedModel(model=None, tokenizer=gpt2, path=tmp_path, name="none")  # never reached
    with pytest.raises(ValueError, match="--shots 200: the subject anatomy has only 134 other"):
        evaluate_mmlu(loaded, shots=200, subjects=["anatomy"], limit=1, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_table2_grouping_covers_all_57_subjects():
    assert len(SUBJECT_CATEGORY) == 57 and set(SUBJECT_CATEGORY) == set(SUBJECT_LEVEL)
    assert set(SUBJECT_CATEGORY.values()) == set(CATEGORIES) and set(SUBJECT_LEVEL.values()) == set(LEVELS)
    records = [{"subject": s, "correct": True} for s in SUBJECT_CATEGORY]
    summary = summarize(records)
    assert list(summary["categories"]) == list(CATEGORIES) and list(summary["levels"]) == list(LEVELS)
    assert sum(v["n"] for v in summary["categories"].values()) == 57
    assert sum(v["n"] for v in summary["levels"].values()) == 57


@needs_lm_eval
def test_mmlu_command_writes_the_table(gpt2, tmp_path, capsys):
    from helpers import memory_model

    from lm2.cli import main

    model = memory_model(vocab_size=len(gpt2))
    model.save_pretrained(tmp_path / "ckpt")
    gpt2.save_pretrained(str(tmp_path / "ckpt"))
    code = main(["eval", "mmlu", "--model", str(tmp_path / "ckpt"), "--subjects", "anatomy", "marketing",
                 "--limit", "3", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "STEM" in out and "Average" in out
    summary = json.loads((tmp_path / "out" / "mmlu_letter_0shot.json").read_text())
    assert summary["average"]["n"] == 6 and "lm_eval_check" not in summary
    assert (tmp_path / "out" / "lm_eval.log").is_file()  # what the harness says (tests/eval/test_quiet.py)
    assert main(["eval", "mmlu", "--model", str(tmp_path / "ckpt"), "--subjects", "astrology", "--no-progress"]) == 2
    assert main(["eval", "mmlu", "--model", str(tmp_path / "ckpt"), "--check-lm-eval"]) == 2
    assert "--check-lm-eval is gone" in capsys.readouterr().err


@needs_lm_eval
def test_reuse_takes_saved_scores_without_scoring_again(gpt2, tmp_path, monkeypatch):
    """--reuse returns the saved run's summary and refuses a folder from other settings."""
    from helpers import memory_model

    import lm2.eval.mmlu as mmlu
    from lm2.eval.common import LoadedModel

    loaded = LoadedModel(model=memory_model(vocab_size=len(gpt2)), tokenizer=gpt2, path=tmp_path, name="tiny")
    first = mmlu.evaluate_mmlu(loaded, subjects=["anatomy", "virology"], limit=3, out_dir=tmp_path / "out",
                               progress=False)

    def no_scoring(*args, **kwargs):
        raise AssertionError("--reuse scored the questions again")

    monkeypatch.setattr(mmlu, "run_lm_eval_mmlu", no_scoring)
    again = mmlu.evaluate_mmlu(loaded, subjects=["anatomy", "virology"], limit=3, out_dir=tmp_path / "out",
                               progress=False, reuse=True)
    assert again == json.loads(json.dumps(first))
    with pytest.raises(ValueError, match="limit"):
        mmlu.evaluate_mmlu(loaded, subjects=["anatomy", "virology"], limit=2, out_dir=tmp_path / "out",
                           progress=False, reuse=True)
    with pytest.raises(ValueError, match="not the"):
        mmlu.evaluate_mmlu(loaded, subjects=["anatomy"], limit=3, out_dir=tmp_path / "out", progress=False,
                           reuse=True)
    with pytest.raises(FileNotFoundError, match="without --reuse"):
        mmlu.evaluate_mmlu(loaded, subjects=["anatomy"], limit=3, out_dir=tmp_path / "none", progress=False,
                           reuse=True)


def test_harness_calls_group_subjects_up_to_a_number_of_questions():
    from lm2.eval.mmlu import harness_calls

    sizes = {"a": 3, "b": 3, "c": 60, "d": 1, "e": 2}
    assert harness_calls(list(sizes), sizes, 5) == [["a", "b"], ["c"], ["d", "e"]]
    assert harness_calls(list(sizes), sizes, 1) == [[s] for s in sizes]
    assert harness_calls(["d", "e"], sizes, 50) == [["d", "e"]] and harness_calls([], sizes, 5) == []


@needs_lm_eval
def test_merging_subject_halves_equals_one_run(gpt2, tmp_path):
    """scripts/merge_mmlu.py on two disjoint runs gives the table of one run over both subject sets."""
    import subprocess
    import sys
    from pathlib import Path

    from helpers import memory_model

    from lm2.eval.common import LoadedModel
    from lm2.eval.mmlu import evaluate_mmlu

    loaded = LoadedModel(model=memory_model(vocab_size=len(gpt2)), tokenizer=gpt2, path=tmp_path, name="tiny")
    run = {"limit": 3, "progress": False}
    whole = evaluate_mmlu(loaded, subjects=["anatomy", "marketing", "virology"], **run)
    evaluate_mmlu(loaded, subjects=["anatomy", "virology"], out_dir=tmp_path / "a", **run)
    evaluate_mmlu(loaded, subjects=["marketing"], out_dir=tmp_path / "b", **run)
    script = Path(__file__).resolve().parents[2] / "scripts" / "merge_mmlu.py"
    subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "m"), str(tmp_path / "a"),
                    str(tmp_path / "b")], check=True, capture_output=True)
    merged = json.loads((tmp_path / "m" / "mmlu_letter_0shot.json").read_text())
    for key in ("subjects", "categories", "levels", "average", "macro_average"):
        assert merged[key] == json.loads(json.dumps(whole[key])), key
    overlap = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "m2"), str(tmp_path / "a"),
                              str(tmp_path / "a")], capture_output=True, text=True)
    assert overlap.returncode != 0 and "disjoint" in overlap.stderr


def test_compare_mmlu_counts_changes_question_by_question():
    """scripts/compare_mmlu.py: gained / lost / changed, letter shares and log-likelihood moves of two runs."""
    compare_mmlu = load_script("compare_mmlu")

    def record(answer, pred, lls):
        return {"subject": "anatomy", "answer": answer, "pred": pred, "correct": pred == answer,
                "loglikelihoods": lls}

    base = [record(0, 0, [-1, -2, -3, -4]), record(1, 0, [-1, -2, -3, -4]), record(2, 3, [-4, -3, -2, -1])]
    other = [record(0, 1, [-2, -1, -3, -4]), record(1, 1, [-2, -1, -3, -4]), record(2, 3, [-4, -3, -2, -1])]
    result = compare_mmlu.compare(base, other)
    assert result["changed"] == 2 and result["gained"] == 1 and result["lost"] == 1
    assert result["accuracy"] == [pytest.approx(100 / 3), pytest.approx(100 / 3)]
    shares = result["letter_share"]
    assert shares[0]["A"] == pytest.approx(200 / 3) and shares[1]["B"] == pytest.approx(200 / 3)
    assert result["loglikelihood_moved"] == {"mean": pytest.approx(2 / 3), "max": 1}
    with pytest.raises(ValueError, match="same questions"):
        compare_mmlu.compare(base, other[:2])
    # the same questions with the subjects in another order (a run merged from parts against one run)
    virology = [{**r, "subject": "virology"} for r in base]
    assert compare_mmlu.compare(base + virology, virology + base) == compare_mmlu.compare(base + virology,
                                                                                          base + virology)
    # a run over more subjects, in another subject order, against one over anatomy alone
    wider = [{**r, "subject": "virology"} for r in other] + other
    assert compare_mmlu.compare(*compare_mmlu.common_subjects(wider, base)) == compare_mmlu.compare(other, base)
    with pytest.raises(ValueError, match="no subject in common"):
        compare_mmlu.common_subjects(base, [{**r, "subject": "virology"} for r in other])


@needs_lm_eval
def test_an_interrupted_run_resumes_from_its_finished_subjects(gpt2, tmp_path, monkeypatch):
    """Each finished subject is saved as it ends; --resume scores only the others and ends with the records and
    table of one uninterrupted run, and refuses saved scores it cannot use."""
    from helpers import memory_model

    import lm2.eval.mmlu as mmlu
    from lm2.data.mmlu import load_mmlu
    from lm2.eval.common import LoadedModel

    loaded = LoadedModel(model=memory_model(vocab_size=len(gpt2)), tokenizer=gpt2, path=tmp_path, name="tiny")
    subjects, run = ["anatomy", "marketing", "virology"], {"limit": 3, "progress": False}
    mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=tmp_path / "whole", **run)
    whole = (tmp_path / "whole" / "mmlu_letter_0shot_predictions.jsonl").read_text()
    assert not (tmp_path / "whole" / "mmlu_letter_0shot.partial.jsonl").exists()  # removed once written

    monkeypatch.setattr(mmlu, "CALL_QUESTIONS", 1)  # one subject per harness call
    real, scored = mmlu.run_lm_eval_mmlu, []

    def dies_on_the_third_subject(lm, questions, *args, **kwargs):
        if len(scored) == 2:
            raise KeyboardInterrupt
        scored.append(questions[0].subject)
        return real(lm, questions, *args, **kwargs)

    monkeypatch.setattr(mmlu, "run_lm_eval_mmlu", dies_on_the_third_subject)
    out = tmp_path / "stopped"
    with pytest.raises(KeyboardInterrupt):
        mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, **run)
    partial = out / "mmlu_letter_0shot.partial.jsonl"
    order = list(dict.fromkeys(q.subject for q in load_mmlu(subjects)))  # the file's order of subjects
    assert [json.loads(line)["subject"] for line in partial.open()] == order[:2] == scored
    with pytest.raises(ValueError, match="add --resume"):  # a fresh run does not drop the saved subjects
        mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, **run)
    with pytest.raises(ValueError, match="limit 3 there, 2 now"):
        mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, resume=True, limit=2, progress=False)
    with pytest.raises(ValueError, match="does not ask for"):
        mmlu.evaluate_mmlu(loaded, subjects=order[2:], out_dir=out, resume=True, **run)
    with pytest.raises(ValueError, match="choose one"):
        mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, resume=True, reuse=True, **run)
    scored.clear()
    monkeypatch.setattr(mmlu, "run_lm_eval_mmlu", lambda lm, questions, *args, **kw: (
        scored.append(questions[0].subject), real(lm, questions, *args, **kw))[1])
    with open(partial, "a") as f:
        f.write('{"subject": "viro')  # the torn last line of a run killed while writing it
    summary = mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, resume=True, **run)
    assert scored == order[2:] and summary["reused_questions"] == 6
    assert (out / "mmlu_letter_0shot_predictions.jsonl").read_text() == whole and not partial.exists()
    scored.clear()  # rerun once finished: --resume takes the saved scores instead of scoring it all again
    again = mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, resume=True, **run)
    assert scored == [] and again["average"] == summary["average"] and again["subjects"] == summary["subjects"]
    assert (out / "mmlu_letter_0shot_predictions.jsonl").read_text() == whole
    with pytest.raises(ValueError, match="limit"):  # and checks them as --reuse does
        mmlu.evaluate_mmlu(loaded, subjects=subjects, out_dir=out, resume=True, limit=2, progress=False)


def test_compare_mmlu_by_subject_from_summaries_alone(tmp_path, capsys, monkeypatch):
    """A summary JSON without its per-question records (docs/results) compares by subject: every group's accuracy
    before and after, subjects up / down / level, the largest moves; different subjects or sizes are refused."""
    import json
    import sys

    compare_mmlu = load_script("compare_mmlu")

    def records(subject, correct):
        return [{"subject": subject, "answer": 0, "pred": 0 if c else 1, "correct": c, "loglikelihoods": [0] * 4}
                for c in correct]

    base = summarize(records("anatomy", [1, 0, 0, 0]) + records("virology", [1, 1, 0, 0])
                     + records("high_school_physics", [0, 0, 0, 0]))
    other = summarize(records("anatomy", [1, 1, 1, 0]) + records("virology", [1, 0, 0, 0])
                      + records("high_school_physics", [0, 0, 0, 0]))
    result = compare_mmlu.compare_summaries(base, other)
    assert (result["up"], result["down"], result["level"]) == (1, 1, 1)
    assert result["groups"]["average"] == (pytest.approx(100 / 4), pytest.approx(100 * 4 / 12), 12)
    assert result["groups"]["level High School"] == (0.0, 0.0, 4)
    assert result["largest"][0] == ("virology", pytest.approx(-25.0), 4)
    assert result["largest"][-3] == ("anatomy", pytest.approx(50.0), 4)
    (tmp_path / "a.json").write_text(json.dumps(base))
    (tmp_path / "b.json").write_text(json.dumps(other))
    monkeypatch.setattr(sys, "argv", ["compare_mmlu.py", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    compare_mmlu.main()
    out = capsys.readouterr().out
    assert "average" in out and "25.00 ->  33.33" in out and "1 up, 1 down, 1 level" in out
    plot = tmp_path / "subjects.png"
    monkeypatch.setattr(sys, "argv", ["compare_mmlu.py", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                                      "--plot", str(plot), "--names", "Llama", "with memory"])
    compare_mmlu.main()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {plot}" in capsys.readouterr().out
    smaller = summarize(records("anatomy", [1]) + records("virology", [1, 1, 0, 0])
                        + records("high_school_physics", [0, 0, 0, 0]))
    with pytest.raises(ValueError, match="same subjects"):
        compare_mmlu.compare_summaries(base, smaller)
    (tmp_path / "c.json").write_text(json.dumps({"average": 1}))
    monkeypatch.setattr(sys, "argv", ["compare_mmlu.py", str(tmp_path / "a.json"), str(tmp_path / "c.json")])
    with pytest.raises(SystemExit, match="not an `lm2 eval mmlu` summary"):
        compare_mmlu.main()


def test_mmlu_in_pieces_covers_every_subject_once_and_names_failed_pieces(tmp_path, monkeypatch, capsys):
    """scripts/mmlu_in_pieces.py: its pieces hold each of the 57 subjects exactly once (professional_law first
    and alone), every piece resumes, a failed piece stops the run before the merge and is named."""
    import sys

    script = load_script("mmlu_in_pieces")
    pieces = script.pieces()
    assert pieces[0] == ("law", ["professional_law"])
    every = [s for _, subjects in pieces for s in subjects]
    assert sorted(every) == sorted(SUBJECT_CATEGORY) and len(every) == 57

    calls = []

    def fake_call(cmd, **kwargs):
        calls.append(cmd)
        assert kwargs.get("env", {}).get("OMP_NUM_THREADS") == "1"
        return 1 if cmd[cmd.index("--out") + 1].endswith("a2") else 0

    monkeypatch.setattr(script.subprocess, "call", fake_call)
    monkeypatch.setattr(sys, "argv", ["mmlu_in_pieces.py", "--model", "m", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="pieces a2 failed"):
        script.main()
    assert len(calls) == len(pieces) and all("--resume" in c for c in calls)  # no merge after a failure
    assert "a2 FAILED" in capsys.readouterr().out
    # a piece that finished is not scored again when the command is rerun
    for path in script.result_files(tmp_path / "o" / "law", "letter", 0):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    calls.clear()
    with pytest.raises(SystemExit, match="pieces a2 failed"):
        script.main()
    assert len(calls) == len(pieces) - 1 and not any(c[c.index("--out") + 1].endswith("law") for c in calls)
