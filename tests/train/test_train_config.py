"""The training config: overrides, validation naming the field, the curriculum's stages, the LR schedule."""

from __future__ import annotations

import re

import pytest

from lm2.train.config import accumulation_steps, apply_overrides, from_dict, load_config
from lm2.train.optim import lr_factor


def test_overrides_are_nested_and_typed():
    overrides = ["--train.lr", "3e-4", "--model.config.sliding_window=64", "--data.babi_tasks", "[qa1, qa2]"]
    assert apply_overrides({}, overrides) == {
        "train": {"lr": 3e-4}, "model": {"config": {"sliding_window": 64}}, "data": {"babi_tasks": ["qa1", "qa2"]}}
    base = {"model": {"config": {"memory_slots": 4}}, "data": {"curriculum": [{"steps": 1, "lengths": ["0k"]}]}}
    merged = apply_overrides(base, ["--model.config.sliding_window", "8", "--data.curriculum",
                                    "[{steps: 100, lengths: [0k]}]"])
    assert merged == {"model": {"config": {"memory_slots": 4, "sliding_window": 8}},  # dicts merge, lists replace
                      "data": {"curriculum": [{"steps": 100, "lengths": ["0k"]}]}}
    assert base["model"]["config"] == {"memory_slots": 4}  # the config read is left as it was
    cfg = load_config(None, ["--data.task", "lm", "--train.steps", "3", "--train.lr", "3e-4", "--train.warmup_steps",
                             "1", "--model.config.sliding_window", "64"])
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float) and cfg.model.config == {"sliding_window": 64}


@pytest.mark.parametrize("overrides, message", [
    (["--train.batch_size", "eight"], "config field train.batch_size='eight' is invalid: input should be a valid int"),
    (["--train.batch_size", "8.0"], "config field train.batch_size=8.0 is invalid"),
    (["--train.batch_size", "true"], "config field train.batch_size=True is invalid"),
    (["--data.tokenizer", "[gpt2]"], "config field data.tokenizer=['gpt2'] is invalid: input should be a valid str"),
    (["--train.backbone_lr", "fast"], "config field train.backbone_lr='fast' is invalid"),
    (["--train", "3"], "config field train=3 is invalid: input should be an object"),
    (["--train.lrr", "1"], "unknown config field train.lrr: the fields of train are ['backbone_lr', 'batch_size'"),
    (["--optimizer.lr", "1"], "unknown config field optimizer: the fields of the config are ['checkpoint'"),
    (["--train.lr", "1", "--train.lr.x", "1"], "override --train.lr.x: lr is not a section of fields"),
])
def test_a_wrong_type_is_one_line_naming_the_field(overrides, message):
    """The annotations of the config's dataclasses are the types (checked by pydantic); the error is one line."""
    with pytest.raises(ValueError) as err:
        load_config(None, ["--data.task", "lm", "--train.steps", "3", *overrides])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_empty_section_is_the_defaults():
    assert from_dict({"data": {"task": "lm"}, "train": {"steps": 1}, "eval": None}).eval.interval == 100


@pytest.mark.parametrize("values, field", [
    ({"train": {"lr": -1.0}}, "train.lr"),
    ({"train": {"lrr": 1.0}}, "train.lrr"),
    ({"train": {"batch_size": "eight"}}, "train.batch_size"),
    ({"model": {"kind": "gpt"}}, "model.kind"),
    ({"model": {"preset": "huge"}}, "model.preset"),
    ({"data": {"task": "lm", "segment_length": 0}, "train": {"steps": 3}}, "data.segment_length"),
    ({"data": {"task": "lm"}}, "train.steps"),
    ({"distributed": {"strategy": "zero3"}}, "distributed.strategy"),
    ({"train": {"batch_size": 8, "micro_batch_size": 3}}, "train.micro_batch_size"),
    ({"train": {"backbone_lr": 0.0}}, "train.backbone_lr"),
    ({"train": {"backbone_lr": 1e-5}, "model": {"freeze_backbone": True}}, "train.backbone_lr"),
    ({"train": {"backbone_lr": 1e-5}, "model": {"kind": "rmt"}}, "train.backbone_lr"),
    ({"train": {"skip_nonfinite": -1}}, "train.skip_nonfinite"),
    ({"model": {"config": {"memory_slotz": 4}}}, "model.config.memory_slotz"),
    ({"model": {"rmt": {"tokens": 4}}}, "model.rmt.tokens"),
    ({"model": {"config": {"memory_heads": 5}}}, "model.config"),
    ({"model": {"config": {"sliding_window": 0}}}, "model.config"),
    ({"model": {"config": {"memory_update": "add"}}}, "model.config"),
    ({"data": {"task": "babilong", "supervise": "all"}}, "data.supervise"),
    ({"data": {"task": "babilong", "fact_loss": True}}, "data.fact_loss"),
    ({"data": {"task": "babilong", "ask_everyone": True}}, "data.ask_everyone"),
    ({"data": {"task": "babilong", "supervise": "story", "ask_everyone": True, "babi_tasks": ["qa1", "qa6"]}},
     "data.ask_everyone"),
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"], "answer_steps": ["qa1"]}},
     "data.answer_steps"),  # qa2 and qa3 only
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa1"], "answer_steps": ["qa2"]}},
     "data.answer_steps"),  # a task not trained
    ({"data": {"task": "babilong", "babi_tasks": ["qa2"], "answer_steps": ["qa2"]}}, "data.answer_steps"),
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"], "answer_steps": "qa2"}},
     "data.answer_steps"),  # a list
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"], "answer_steps": ["qa99"]}},
     "data.answer_steps"),
    ({"data": {"task": "babilong", "babi_tasks": ["qa1", "qa2"], "task_weights": {"qa3": 2}}},
     "data.task_weights"),  # a task not trained
    ({"data": {"task": "babilong", "babi_tasks": ["qa1", "qa2"], "task_weights": {"qa2": -1}}}, "data.task_weights"),
    ({"data": {"task": "babilong", "babi_tasks": ["qa1", "qa2"], "task_weights": {"qa2": "3"}}}, "data.task_weights"),
    ({"data": {"task": "babilong", "babi_tasks": ["qa1", "qa2"], "task_weights": {"qa2": float("nan")}}},
     "data.task_weights"),
    ({"data": {"task": "babilong", "babi_tasks": ["qa1", "qa2"], "task_weights": {"qa1": 0, "qa2": 0}}},
     "data.task_weights"),  # nothing left to draw
    ({"data": {"task": "babilong", "babi_tasks": ["qa1", "qa2"], "task_weights": {"qa2": 1, "2": 3}}},
     "data.task_weights"),  # the same task twice
    ({"data": {"task": "babilong", "babi_tasks": ["qa1"], "task_weights": {"qa99": 1}}}, "data.task_weights"),
    ({"data": {"task": "babilong", "facts_within": 0.0}}, "data.facts_within"),
    ({"data": {"task": "babilong", "facts_within": 1.5}}, "data.facts_within"),
    ({"data": {"task": "babilong", "supervise": "story", "facts_within": 0.5}}, "data.facts_within"),
    ({"data": {"task": "babilong", "curriculum": [{"steps": 5, "lengths": ["0k"], "drop_words": "the"}]}},
     r"data.curriculum[0].drop_words"),
    ({"data": {"task": "babilong", "curriculum": [{"steps": 5, "lengths": ["0k"], "drop_words": ["went to"]}]}},
     r"data.curriculum[0].drop_words"),
    ({"data": {"task": "babilong", "curriculum": [{"steps": 5, "lengths": ["0k"], "drop_wordz": ["to"]}]}},
     r"data.curriculum[0]"),
    ({"data": {"task": "babilong", "curriculum": [{"steps": 5, "lengths": ["0k"], "bare_questions": True}]}},
     r"data.curriculum[0].bare_questions"),  # needs data.supervise=story
    ({"data": {"task": "babilong", "supervise": "story",
               "curriculum": [{"steps": 5, "lengths": ["0k"], "bare_questions": "yes"}]}},
     r"data.curriculum[0].bare_questions"),
    ({"data": {"task": "babilong", "curriculum": [{"steps": 5, "lengths": ["0k"], "compact_share": 1.5}]}},
     r"data.curriculum[0].compact_share"),
    ({"data": {"task": "babilong", "curriculum": [{"steps": 5, "lengths": ["0k"], "length_per_step": 1}]}},
     r"data.curriculum[0].length_per_step"),
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"], "answer_steps": ["qa2"],
               "curriculum": [{"steps": 5, "lengths": ["0k"], "step_share": 2}]}}, r"data.curriculum[0].step_share"),
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"], "answer_steps": ["qa2"],
               "curriculum": [{"steps": 5, "lengths": ["0k"], "step_share": True}]}}, r"data.curriculum[0].step_share"),
    ({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"],
               "curriculum": [{"steps": 5, "lengths": ["0k"], "step_share": 0.5}]}},
     r"data.curriculum[0].step_share"),  # no data.answer_steps to share out
    ({"model": {"config": {"attention_conv": 1}}}, "model.config"),
    ({"train": {"memory_after": -1}}, "train.memory_after"),
    ({"train": {"memory_after": 5}, "model": {"kind": "vanilla"}}, "train.memory_after"),
    ({"data": {"task": "recall", "recall": {"pairz": 4}}}, "data.recall"),
    ({"data": {"task": "recall", "recall": {"pairs": 9, "segment_length": 16}}}, "data.recall"),
    ({"data": {"task": "recall", "curriculum": [{"steps": 5, "lengths": ["0k"]}]}}, r"data.curriculum[0]"),
    ({"data": {"task": "recall", "curriculum": [{"steps": 5, "distractors": [-1]}]}}, r"data.curriculum[0]"),
    ({"data": {"task": "recall", "curriculum": [{"steps": 5, "distractors": [1], "gap": -1}]}},
     r"data.curriculum[0]"),
    ({"data": {"task": "recall", "curriculum": [{"steps": 5, "distractors": [1]}, {"steps": 5, "distractors": [1],
                                                 "gap": 3}]}}, r"data.curriculum[1]"),  # 4 pairs of 5 > 16
    ({"data": {"task": "recall", "curriculum": [{"steps": 5, "distractors": [1], "query_gap": 2}]}},
     r"data.curriculum[0]"),  # a stage's markers need data.recall.query_gap (the vocabulary's marker)
    ({"data": {"task": "recall", "recall": {"query_gap": 2},
               "curriculum": [{"steps": 5, "distractors": [1], "query_gap": -1}]}}, r"data.curriculum[0]"),
    ({"data": {"task": "recall", "curriculum": [{"steps": 5, "distractors": [1]}]}, "eval": {"lengths": ["1k"]}},
     "eval.lengths"),
])
def test_bad_field_is_named(values, field):
    values.setdefault("data", {}).setdefault("task", "lm")
    values.setdefault("train", {}).setdefault("steps", 3)
    if field == "train.steps":
        values["train"]["steps"] = 0
    with pytest.raises(ValueError, match=re.escape(field)):
        from_dict(values)


def test_bad_config_fails_before_any_work(tmp_path, capsys):
    from lm2.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text("out_dir: %s\ndata: {task: lm}\ntrain: {steps: 5, warmup_steps: -1}\n" % (tmp_path / "run"))
    assert main(["train", str(path)]) == 2
    assert "train.warmup_steps" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_accumulation_and_world_size():
    cfg = from_dict({"data": {"task": "lm"}, "train": {"steps": 1, "batch_size": 8, "micro_batch_size": 2}})
    assert accumulation_steps(cfg, 1) == (2, 4)
    assert accumulation_steps(cfg, 2) == (2, 2)
    with pytest.raises(ValueError, match="batch_size"):
        accumulation_steps(cfg, 3)


def test_curriculum_stages():
    babilong = pytest.importorskip("lm2.data.babilong")
    del babilong
    cfg = from_dict({"data": {"curriculum": [{"steps": 2, "lengths": ["0k"]}, {"steps": 3, "lengths": ["0k", "1k"]}]}})
    assert cfg.total_steps() == 5
    assert [cfg.stage_at(s)[0] for s in range(7)] == [0, 0, 1, 1, 1, 1, 1]


def test_schedule_warms_up_then_decays_to_floor():
    f = [lr_factor(s, 4, 20, 0.1) for s in range(21)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0
    assert all(a >= b for a, b in zip(f[4:], f[5:]))
    assert f[20] == pytest.approx(0.1)


def test_cooldown_ends_the_cosine_early_then_falls_linearly():
    k, total, floor = 5, 20, 0.5
    f = [lr_factor(s, 4, total, floor, cooldown_steps=k) for s in range(total)]
    # the cosine is the no-cooldown schedule of a run K steps shorter
    assert f[:total - k] == [lr_factor(s, 4, total - k, floor) for s in range(total - k)]
    # then from the floor down a straight line to floor / K at the last step
    assert f[total - k:] == pytest.approx([floor * (k - i) / k for i in range(k)])
    assert f[total - 1] == pytest.approx(floor / k) and f[total - k] == pytest.approx(floor)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))
    assert [lr_factor(s, 4, total, floor, 0) for s in range(total)] == [lr_factor(s, 4, total, floor)
                                                                       for s in range(total)]
    # a cooldown longer than the steps after warm-up covers those steps: warm-up, then the line from the floor
    short = [lr_factor(s, 4, 10, floor, cooldown_steps=100) for s in range(10)]
    assert short[:4] == [0.25, 0.5, 0.75, 1.0] and short[4:] == pytest.approx([floor * (6 - i) / 6 for i in range(6)])


def test_repo_configs_are_valid():
    from pathlib import Path

    pytest.importorskip("lm2.data.babilong")
    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        load_config(path)


def test_unknown_model_config_field_lists_the_valid_ones():
    fields = r"model\.config\.memory_slotz: the fields of model\.config are \[.*'memory_slots'"
    with pytest.raises(ValueError, match=fields):
        from_dict({"data": {"task": "lm"}, "train": {"steps": 1}, "model": {"config": {"memory_slotz": 4}}})


@pytest.mark.parametrize("text, overrides, message", [
    ("", [], "is empty"),
    ("train: {lr: [1e-3\n", [], r"bad\.yaml is not valid YAML \(line 2, column 1\)"),
    ("data: {task: lm}\n", ["--train.steps", "[3"], "override --train.steps is not valid YAML"),
    ("\xff\xfe\x00binary", [], "is not UTF-8 text"),
])
def test_unreadable_config_is_one_clear_error(tmp_path, text, overrides, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=message):
        load_config(path, overrides)


def test_babilong_stage_fields_shape_only_their_stage():
    """A stage's drop_words and bare_questions reach the training stream in that stage only: "Mary kitchen."
    statements and "\\nMary kitchen" questions first, the evaluation's text after."""
    from lm2.data.tokenizers import gpt2_tokenizer
    from lm2.train.data import make_stream

    drop = ["went", "moved", "journeyed", "travelled", "back", "to", "the", "Where", "is"]
    cfg = from_dict({"data": {"task": "babilong", "supervise": "story", "curriculum": [
        {"steps": 1, "lengths": ["0k"], "drop_words": drop, "bare_questions": True}, {"steps": 1, "lengths": ["0k"]}]},
        "train": {"batch_size": 4}})
    tok = gpt2_tokenizer()
    stream = make_stream(cfg, tok, 0, 1, 4)
    first, second = ([tok.decode(stream.example(step, i)[0]) for i in range(4)] for step in (0, 1))
    assert not any("Question:" in t or " the " in t or "?" in t for t in first)
    assert all(re.fullmatch(r"(?:[A-Z][a-z]+ [a-z]+\.[ \n]|\n?[A-Z][a-z]+ [a-z]+<\|endoftext\|>)+", t) for t in first)
    assert all("Question: Where is" in t and " to the " in t for t in second)
    # compact_share: a share of the stage's samples compact, the rest as evaluated, drawn per sample
    cfg.data.curriculum[0]["compact_share"] = 0.5
    mixed = [tok.decode(make_stream(cfg, tok, 0, 1, 4).example(0, i)[0]) for i in range(40)]
    bare = sum("Question:" not in t for t in mixed)
    assert 10 <= bare <= 30 and all(("Question:" in t) == (" to the " in t) for t in mixed)


def test_step_share_writes_the_step_in_that_share_of_a_stages_stories():
    """With data.answer_steps: [qa2], a stage without step_share answers every qa2 question "<person> <room>"; with
    step_share p about that share of its stories do (drawn per story, every answer of a story alike), the rest
    answer the room alone; at 0 none do."""
    from lm2.data.tokenizers import gpt2_tokenizer
    from lm2.train.data import make_stream

    tok = gpt2_tokenizer()

    def words_per_answer(stage: dict) -> list[set[int]]:
        """Per story (step 0, 40 samples): the numbers of words its answers have."""
        cfg = from_dict({"data": {"task": "babilong", "supervise": "story", "babi_tasks": ["qa2"],
                                  "answer_steps": ["qa2"], "curriculum": [{"steps": 1, "lengths": ["0k"], **stage}]},
                         "train": {"batch_size": 4}})
        stream = make_stream(cfg, tok, 0, 1, 4)
        texts = [tok.decode(stream.example(0, i)[0]) for i in range(40)]
        return [{len(a.split(tok.eos_token)[0].split()) for a in t.split("Answer: ")[1:]} for t in texts]

    assert all(n == {2} for n in words_per_answer({}))
    half = words_per_answer({"step_share": 0.5})
    assert all(n in ({1}, {2}) for n in half) and 10 <= sum(n == {2} for n in half) <= 30
    assert all(n == {1} for n in words_per_answer({"step_share": 0.0}))


def test_length_per_step_gives_each_batch_one_length_on_every_process():
    """length_per_step: true draws a stage's length once per step, the same for every sample and process (no
    short sample padded to a long one); without it each sample draws its own."""
    from lm2.data.tokenizers import gpt2_tokenizer
    from lm2.train.data import make_stream

    tok = gpt2_tokenizer()

    def lengths(per_step: bool, rank: int = 0, world: int = 1) -> list[set[bool]]:
        """Per step: which lengths its samples have (True: a 1k sample, over 600 tokens)."""
        cfg = from_dict({"data": {"task": "babilong", "supervise": "story", "curriculum": [
            {"steps": 12, "lengths": ["0k", "1k"], "length_per_step": per_step}]}, "train": {"batch_size": 8}})
        stream = make_stream(cfg, tok, rank, world, 8 // world)
        return [{bool(n > 600) for batch in stream.micro_batches(step) for n in batch["attention_mask"].sum(1)}
                for step in range(12)]

    one = lengths(True)
    assert all(len(kinds) == 1 for kinds in one) and set().union(*one) == {False, True}
    assert lengths(True, rank=1, world=2) == one  # the other process's half of each batch: the same length
    assert any(len(kinds) == 2 for kinds in lengths(False))  # per sample: 0k and 1k within a batch
