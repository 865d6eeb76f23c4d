"""MMLU scoring: rigged models on hand-made questions, the Table 2 grouping, the log-likelihood engine, and the
agreement with lm-evaluation-harness."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lm2.data.mmlu import CATEGORIES, LEVELS, SUBJECT_CATEGORY, SUBJECT_LEVEL, MMLUQuestion
from lm2.eval.mmlu import context_text, encode_pair, loglikelihoods, score_questions, summarize, table2

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


@pytest.mark.parametrize("letter", ["A", "B", "C", "D"])
def test_a_model_that_prefers_one_letter_scores_that_letters_share(letter, gpt2, letter_lm):
    token = gpt2.encode(" " + letter)[0]
    records = score_questions(letter_lm(len(gpt2), token), gpt2, HAND_MADE, form="letter", progress=False)
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


def test_cloze_form_normalises_by_characters(gpt2, letter_lm):
    """A uniform model gives each choice -(tokens * log V); the prediction maximises that per character."""
    records = score_questions(letter_lm(len(gpt2)), gpt2, HAND_MADE, form="cloze", progress=False)
    for q, r in zip(HAND_MADE, records):
        context = context_text(q, HAND_MADE, 0, "cloze")
        lls = [-len(encode_pair(gpt2, context, " " + c)[1]) * math.log(len(gpt2)) for c in q.choices]
        assert r["loglikelihoods"] == pytest.approx(lls, abs=1e-3)
        assert r["pred"] == max(range(4), key=lambda c: lls[c] / len(q.choices[c]))


def test_fewshot_prompt_uses_the_subjects_other_questions():
    q = HAND_MADE[1]
    text = context_text(q, HAND_MADE[:2], 1, "letter")
    assert text.startswith("The following are multiple choice questions (with answers) about high school physics.")
    assert "What falls faster in a vacuum?" in text and text.endswith("D. pascal\nAnswer:")
    assert text.count("Answer:") == 2 and "Answer: C\n\n" in text  # the example is answered
    with pytest.raises(ValueError, match="only 1 other"):
        context_text(q, HAND_MADE[:2], 2, "letter")


def test_table2_grouping_covers_all_57_subjects():
    assert len(SUBJECT_CATEGORY) == 57 and set(SUBJECT_CATEGORY) == set(SUBJECT_LEVEL)
    assert set(SUBJECT_CATEGORY.values()) == set(CATEGORIES) and set(SUBJECT_LEVEL.values()) == set(LEVELS)
    records = [{"subject": s, "correct": True} for s in SUBJECT_CATEGORY]
    summary = summarize(records)
    assert list(summary["categories"]) == list(CATEGORIES) and list(summary["levels"]) == list(LEVELS)
    assert sum(v["n"] for v in summary["categories"].values()) == 57
    assert sum(v["n"] for v in summary["levels"].values()) == 57


def test_loglikelihoods_equal_a_direct_computation():
    """Batched, de-duplicated, right-padded scoring equals one unpadded forward per request."""
    from helpers import memory_model

    model = memory_model(memory_update_interval=3)
    gen = torch.Generator().manual_seed(0)
    contexts = [torch.randint(1, 97, (n,), generator=gen).tolist() for n in (5, 9, 9, 14)]
    requests = [(contexts[0], [3]), (contexts[0], [4]), (contexts[1], [7, 8, 9]), (contexts[2], [1]),
                (contexts[3], [5, 6]), (contexts[3], [5, 2])]
    with torch.no_grad():
        expected = []
        for ctx, cont in requests:
            ids = torch.tensor([ctx + cont])
            logp = torch.log_softmax(model(ids[:, :-1]).logits[0], dim=-1)
            expected.append(sum(float(logp[len(ctx) - 1 + i, t]) for i, t in enumerate(cont)))
        for batch_size in (1, 2, 8):
            fractions = []
            assert loglikelihoods(model, requests, batch_size, on_batch=fractions.append) == pytest.approx(
                expected, abs=1e-4)
            # four distinct inputs (the two requests on contexts[0] share one, so do the two on contexts[3] + [5]),
            # one call per batch
            assert fractions == pytest.approx([min(1.0, (b + 1) * batch_size / 4) for b in range(-(-4 // batch_size))])


def test_mmlu_command_writes_the_table(gpt2, tmp_path, capsys):
    from helpers import memory_model

    from lm2.cli import main

    model = memory_model(vocab_size=len(gpt2))
    model.save_pretrained(tmp_path / "ckpt")
    gpt2.save_pretrained(str(tmp_path / "ckpt"))
    code = main(["eval", "mmlu", "--model", str(tmp_path / "ckpt"), "--subjects", "anatomy", "marketing",
                 "--limit", "3", "--out", str(tmp_path / "out"), "--no-progress", "--check-lm-eval"])
    assert code == 0
    out = capsys.readouterr().out
    assert "STEM" in out and "Average" in out and "lm-evaluation-harness" in out
    summary = json.loads((tmp_path / "out" / "mmlu_letter_0shot.json").read_text())
    assert summary["average"]["n"] == 6 and summary["lm_eval_check"]["agree"]
    assert main(["eval", "mmlu", "--model", str(tmp_path / "ckpt"), "--subjects", "astrology", "--no-progress"]) == 2


def test_scores_are_saved_before_the_lm_eval_check_runs(gpt2, tmp_path, monkeypatch):
    """A check that fails (or is stopped) after lm2's pass must not lose lm2's scores."""
    from helpers import memory_model

    import lm2.eval.mmlu as mmlu
    from lm2.eval.common import LoadedModel
    from lm2.eval.mmlu import evaluate_mmlu

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmlu, "compare_with_lm_eval", interrupted)
    loaded = LoadedModel(model=memory_model(vocab_size=len(gpt2)), tokenizer=gpt2, path=tmp_path, name="tiny")
    with pytest.raises(KeyboardInterrupt):
        evaluate_mmlu(loaded, subjects=["anatomy"], limit=3, out_dir=tmp_path / "out", progress=False,
                      check_lm_eval=True)
    summary = json.loads((tmp_path / "out" / "mmlu_letter_0shot.json").read_text())
    assert summary["average"]["n"] == 3 and "lm_eval_check" not in summary
    assert len((tmp_path / "out" / "mmlu_letter_0shot_predictions.jsonl").read_text().splitlines()) == 3


def test_reuse_checks_saved_scores_without_scoring_again(gpt2, tmp_path, monkeypatch):
    """--reuse hands the saved records to the lm-eval check and refuses a folder from other settings."""
    from helpers import memory_model

    import lm2.eval.mmlu as mmlu
    from lm2.eval.common import LoadedModel

    loaded = LoadedModel(model=memory_model(vocab_size=len(gpt2)), tokenizer=gpt2, path=tmp_path, name="tiny")
    first = mmlu.evaluate_mmlu(loaded, subjects=["anatomy", "virology"], limit=3, out_dir=tmp_path / "out",
                               progress=False)
    saved = [json.loads(line) for line in (tmp_path / "out" / "mmlu_letter_0shot_predictions.jsonl").open()]

    def no_scoring(*args, **kwargs):
        raise AssertionError("--reuse scored the questions again")

    checked = {}

    def fake_check(model, tokenizer, pool, records, *args):
        checked["records"] = records
        return {"lm2": 0.0, "lm_eval": 0.0, "agree": True}

    monkeypatch.setattr(mmlu, "score_questions", no_scoring)
    monkeypatch.setattr(mmlu, "compare_with_lm_eval", fake_check)
    again = mmlu.evaluate_mmlu(loaded, subjects=["anatomy", "virology"], limit=3, out_dir=tmp_path / "out",
                               progress=False, check_lm_eval=True, reuse=True)
    assert checked["records"] == saved
    assert again["average"] == json.loads(json.dumps(first["average"])) and again["lm_eval_check"]["agree"]
    written = json.loads((tmp_path / "out" / "mmlu_letter_0shot.json").read_text())
    assert written["lm_eval_check"]["agree"] and written["average"]["n"] == 6
    with pytest.raises(ValueError, match="limit"):
        mmlu.evaluate_mmlu(loaded, subjects=["anatomy", "virology"], limit=2, out_dir=tmp_path / "out",
                           progress=False, reuse=True)
    with pytest.raises(ValueError, match="not the"):
        mmlu.evaluate_mmlu(loaded, subjects=["anatomy"], limit=3, out_dir=tmp_path / "out", progress=False,
                           reuse=True)
    with pytest.raises(FileNotFoundError, match="without --reuse"):
        mmlu.evaluate_mmlu(loaded, subjects=["anatomy"], limit=3, out_dir=tmp_path / "none", progress=False,
                           reuse=True)


@pytest.mark.parametrize("form", ["letter", "cloze"])
def test_agrees_with_lm_evaluation_harness_on_a_tiny_model(form, gpt2):
    pytest.importorskip("lm_eval")
    from helpers import memory_model

    from lm2.data.mmlu import load_mmlu
    from lm2.eval.mmlu import check_mmlu_against_lm_eval

    model = memory_model(vocab_size=len(gpt2))
    check = check_mmlu_against_lm_eval(model, gpt2, load_mmlu(["anatomy", "virology"]), shots=1, form=form,
                                       limit=4, batch_size=3)
    assert check["questions"] == 8 and check["prompt_mismatches"] == 0
    assert check["prediction_mismatches"] == 0 and check["max_loglikelihood_difference"] < 1e-3
    assert check["agree"]


@pytest.mark.slow
@pytest.mark.parametrize("form", ["letter", "cloze"])
def test_agrees_with_lm_evaluation_harness_on_smollm2(form):
    """The issue's check on a real model: SmolLM2-135M-Instruct, three subjects, both harnesses within 0.5."""
    pytest.importorskip("lm_eval")
    from lm2.data.mmlu import load_mmlu
    from lm2.eval.common import load_model
    from lm2.eval.mmlu import check_mmlu_against_lm_eval

    loaded = load_model("smollm2-135m")
    questions = load_mmlu(["high_school_geography", "college_biology", "world_religions"])
    check = check_mmlu_against_lm_eval(loaded.model, loaded.tokenizer, questions, shots=0, form=form, limit=30)
    assert check["prompt_mismatches"] == 0
    assert abs(check["difference"]) <= 0.5, check


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


def test_merged_lm_eval_checks_weigh_subjects_by_questions():
    """merge_checks: lm-eval's overall accuracy is the question-weighted mean of the parts' subjects; lm2's comes
    from the records; counts add up, the largest difference is kept."""
    merge_mmlu = load_script("merge_mmlu")
    part = {"form": "letter", "shots": 0, "limit": None, "tolerance": 0.5, "prompt_mismatches": 0,
            "prediction_mismatches": 1, "max_loglikelihood_difference": 1e-5, "seconds": 2.0}
    checks = [{**part, "subjects": {"anatomy": {"lm2": 50.0, "lm_eval": 50.0, "n": 2}}},
              {**part, "max_loglikelihood_difference": 3e-5,
               "subjects": {"virology": {"lm2": 25.0, "lm_eval": 0.0, "n": 4}}}]
    records = [{"correct": c} for c in (True, False, True, False, False, False)]
    merged = merge_mmlu.merge_checks(checks, records)
    assert merged["questions"] == 6 and merged["lm2"] == pytest.approx(200 / 6)
    assert merged["lm_eval"] == pytest.approx(100 / 6) and merged["difference"] == pytest.approx(100 / 6)
    assert not merged["agree"] and merged["prediction_mismatches"] == 2
    assert merged["max_loglikelihood_difference"] == 3e-5 and merged["seconds"] == 4.0


def load_script(name: str):
    """A script of scripts/ imported as a module (they are not part of the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

    real, scored = mmlu.score_questions, []

    def dies_on_the_third_subject(model, tokenizer, questions, *args, **kwargs):
        if len(scored) == 2:
            raise KeyboardInterrupt
        scored.append(questions[0].subject)
        return real(model, tokenizer, questions, *args, **kwargs)

    monkeypatch.setattr(mmlu, "score_questions", dies_on_the_third_subject)
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
    monkeypatch.setattr(mmlu, "score_questions", lambda model, tokenizer, questions, *args, **kw: (
        scored.append(questions[0].subject), real(model, tokenizer, questions, *args, **kw))[1])
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
