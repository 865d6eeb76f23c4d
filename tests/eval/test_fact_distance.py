"""scripts/fact_distance.py: the distance from the answer's fact to the answer position, counted in tokens."""

from __future__ import annotations

import pytest

from helpers import char_tokenizer, load_script

from lm2.data.babilong import build_samples, finetune_prompt
from lm2.eval.babilong_scoring import scored_predictions


def test_the_distance_ends_exactly_at_the_last_supporting_fact():
    """With one token per character: the last `distance` characters of the prompt follow the fact, and the fact
    (the person's last move in qa1) ends right before them; it is the last time that sentence occurs."""
    distance = load_script("fact_distance").distance
    tokenizer = char_tokenizer()
    for sample in build_samples("qa1", "1k", 5, split="test", seed=0) + build_samples("qa1", "0k", 3, split="test"):
        d = distance(sample, tokenizer)
        prompt = finetune_prompt(sample)
        fact = sample.facts[max(sample.supporting)]
        assert prompt[: len(prompt) - d].endswith(fact)
        assert fact not in prompt[len(prompt) - d:]
        person = sample.question.split()[-1].rstrip("?")
        later = sample.facts[max(sample.supporting) + 1:]
        assert fact.startswith(person) and not any(f.startswith(person) for f in later)  # qa1: the person's last move


def test_the_first_fact_distance_ends_at_the_first_supporting_fact_in_its_place():
    """qa3 needs several facts: measured from the first one, the prompt before the distance ends with it, it lies as
    many statements in as its index says (repeated statements kept apart), and it is never nearer than the last."""
    distance = load_script("fact_distance").distance
    tokenizer = char_tokenizer()
    for sample in build_samples("qa3", "0k", 6, split="test", seed=0) + build_samples("qa2", "1k", 3, split="test"):
        first, last = distance(sample, tokenizer, True), distance(sample, tokenizer)
        prompt = finetune_prompt(sample)
        before = prompt[: len(prompt) - first]
        assert before.endswith(sample.facts[min(sample.supporting)])
        cursor = 0
        for fact in sample.facts[: min(sample.supporting)]:
            cursor = before.index(fact, cursor) + len(fact)  # every earlier statement comes before it
        assert first >= last and (first > last) == (min(sample.supporting) != max(sample.supporting))


def test_bands_split_distances_at_each_edge_inclusively():
    """A distance equal to an edge stays in the band below it (the window reads that far); every index lands in
    exactly one band."""
    script = load_script("fact_distance")
    distances = [0, 128, 129, 512, 513, 4000, 300]
    groups = script.split_by_distance(distances, [128, 512])
    assert groups == [[0, 1], [2, 3, 6], [4, 5]]
    assert script.band_names([128, 512]) == ["<= 128", "129-512", "> 512"]
    assert script.split_by_distance(distances, [128]) == [[0, 1], [2, 3, 4, 5, 6]]


def test_when_the_person_asked_about_moved_last_the_last_room_is_the_answer():
    """qa1: the last move's room is the target exactly when it was the asked person's move (or by coincidence)."""
    last_room = load_script("fact_distance").last_room
    samples = build_samples("qa1", "1k", 40, split="test", seed=0)
    moved_last = [s for s in samples if max(s.supporting) == len(s.facts) - 1]
    assert moved_last and len(moved_last) < len(samples)
    assert all(last_room(s) == s.target for s in moved_last)
    assert all(last_room(s) in s.facts[-1] and not last_room(s).endswith(".") for s in samples)


def test_last_move_row_for_a_model_that_always_names_the_last_room():
    """Such a model is right on every question about the person who moved last, names the last room every time,
    and is right on the others only where the asked person happens to be in that room too."""
    script = load_script("fact_distance")
    samples = build_samples("qa1", "1k", 40, split="test", seed=0)
    beyond = list(range(0, 40, 2))  # the row looks at these questions only
    outputs = {"last": [script.last_room(s) for s in samples]}
    answers = {"last": [o == s.target for o, s in zip(outputs["last"], samples)]}
    moved = [i for i in beyond if max(samples[i].supporting) == len(samples[i].facts) - 1]
    other = [i for i in beyond if i not in moved]
    by_chance = round(100 * sum(answers["last"][i] for i in other) / len(other))
    row = script.last_move_row("1k", samples, beyond, [("last", None)], answers, outputs)
    assert row == f"| 1k | {len(moved)} / {len(other)} | 100 / {by_chance} | 100 |"
    assert by_chance < 100


def test_a_folder_that_is_not_an_eval_output_says_what_to_give(tmp_path):
    """scored_predictions on a folder without summary.json (a run or checkpoint folder given by mistake), or with a
    broken one, names the folder and the `lm2 eval babilong --out` folder it wants, instead of a bare traceback."""
    with pytest.raises(FileNotFoundError, match=r"has no summary\.json.*lm2 eval babilong --out"):
        scored_predictions(tmp_path, "qa1", "0k")
    (tmp_path / "summary.json").write_text("[1, 2")
    with pytest.raises(ValueError, match=r"summary\.json is not a JSON object"):
        scored_predictions(tmp_path, "qa1", "0k")
    (tmp_path / "summary.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"summary\.json is not a JSON object"):
        scored_predictions(tmp_path, "qa1", "0k")


def test_the_script_refuses_a_run_that_is_not_name_equals_eval_folder(tmp_path, monkeypatch, capsys):
    """Before loading anything, each NAME=FOLDER is checked: a missing name or a folder without summary.json stops
    the script with a usage error (exit 2) naming the argument."""
    script = load_script("fact_distance")
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "summary.json").write_text("{}")
    for bad in (f"{tmp_path}/eval", f"LM2={tmp_path}", f"={tmp_path}/eval"):
        monkeypatch.setattr("sys.argv", ["fact_distance.py", "--tokenizer", str(tmp_path / "none"), bad])
        with pytest.raises(SystemExit) as stop:
            script.main()
        assert stop.value.code == 2 and repr(bad) in capsys.readouterr().err


def test_the_constant_answer_of_pooled_tasks_is_each_tasks_own():
    """Pooled tasks (--task qa1,qa2): the baseline answers each task's most frequent target on its questions in the
    band, not one answer for all (which here would be "x": 3 of 6)."""
    constant = load_script("fact_distance").constant
    targets = [("qa1", "x"), ("qa1", "y"), ("qa1", "y"), ("qa2", "x"), ("qa2", "x"), ("qa2", "z")]
    assert constant(targets, list(range(6))) == "67"  # qa1: y (2 of 3), qa2: x (2 of 3)
    assert constant(targets, [0, 3, 5]) == "67" and constant(targets, [1, 2]) == "100" and constant(targets, []) == "-"


def test_evaluations_of_different_sizes_are_refused(tmp_path, monkeypatch, capsys):
    """Two evaluations with different numbers of answers for a task cannot be compared question by question: the
    script stops with a usage error that names the task, the length and the counts."""
    char_tokenizer().save_pretrained(tmp_path / "tok")
    for name, n in (("a", 2), ("b", 3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text('{"rule": "exact"}')
        rows = "kitchen,kitchen,Where is Mary?\n" * n
        (tmp_path / name / "qa1_0k.csv").write_text("target,output,question\n" + rows)
    monkeypatch.setattr("sys.argv", ["fact_distance.py", "--tokenizer", str(tmp_path / "tok"), "--lengths", "0k",
                                     f"a={tmp_path}/a", f"b={tmp_path}/b"])
    with pytest.raises(SystemExit) as stop:
        load_script("fact_distance").main()
    assert stop.value.code == 2 and "qa1 at 0k" in capsys.readouterr().err


def test_statements_rows_split_the_questions_by_the_samples_statement_count():
    """--by-statements: one row per statement count, holding exactly the questions of samples with that many
    statements, and each model's accuracy on them."""
    rows_of = load_script("fact_distance").statements_rows
    samples = build_samples("qa1", "1k", 10, split="test", seed=0)
    counts = [len(s.facts) for s in samples]
    right = [i % 2 == 0 for i in range(10)]
    rows = rows_of("1k", samples, [("a", None), ("b", None)], {"a": right, "b": [True] * 10})
    assert len(rows) == len(set(counts))
    for row, count in zip(rows, sorted(set(counts))):
        idx = [i for i, c in enumerate(counts) if c == count]
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[:3] == ["1k", str(count), str(len(idx))]
        assert cells[3] == f"{100 * sum(right[i] for i in idx) / len(idx):.0f}" and cells[4] == "100"
