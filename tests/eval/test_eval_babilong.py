"""BABILong evaluation: scores of rigged models, the CSV round trip through `lm2 score babilong`, streaming, and
the errors a user can run into."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from lm2.data.babilong import build_samples, finetune_prompt, instruction_prompt
from lm2.eval.babilong import (
    evaluate_babilong,
    generate_answers,
    parse_lengths,
    parse_tasks,
    plan_batches,
    prompt_ids,
    results_table,
    summarize,
)
from lm2.eval.babilong_scoring import score_csv
from lm2.eval.common import LoadedModel, load_model


def loaded(model, tokenizer, name="rigged"):
    return LoadedModel(model, tokenizer, path=Path(name), name=name)


def oracle(tokenizer, scripted_lm, tasks, lengths, n, fmt):
    """A model that answers every sample's target: it looks its prompt up among the samples' prompts."""
    answers = {}
    for task in tasks:
        for length in lengths:
            for s in build_samples(task, length, n, split="test", seed=0):
                text = finetune_prompt(s) if fmt == "finetune" else instruction_prompt(s, tokenizer, examples=0)
                answers[tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"])] = s.target
    return scripted_lm(tokenizer, lambda prompt: answers[prompt])


@pytest.mark.parametrize("fmt", ["finetune", "instruction"])
def test_a_model_that_always_answers_correctly_scores_100(fmt, gpt2, scripted_lm, tmp_path):
    tasks, lengths = ["qa1", "qa2"], ["0k", "1k"]
    model = oracle(gpt2, scripted_lm, tasks, lengths, 6, fmt)
    summary = evaluate_babilong(loaded(model, gpt2), tasks, lengths, n=6, fmt=fmt, segment_length=100,
                                out_dir=tmp_path, progress=False)
    assert summary["rule"] == {"finetune": "exact", "instruction": "label"}[fmt]
    assert all(acc == 100.0 for per_task in summary["accuracy"].values() for acc in per_task.values())
    assert summary["mean"] == {"0k": 100.0, "1k": 100.0}


@pytest.mark.parametrize("fmt", ["finetune", "instruction"])
def test_a_model_that_always_answers_one_label_scores_its_frequency(fmt, gpt2, scripted_lm):
    n = 40
    targets = [s.target for s in build_samples("qa1", "0k", n, split="test", seed=0)]
    model = scripted_lm(gpt2, lambda prompt: "kitchen")
    summary = evaluate_babilong(loaded(model, gpt2), ["qa1"], ["0k"], n=n, fmt=fmt, progress=False)
    assert 0 < targets.count("kitchen") < n  # the check below could not pass by accident
    assert summary["accuracy"]["qa1"]["0k"] == pytest.approx(100.0 * targets.count("kitchen") / n)


def test_answers_written_with_their_step_are_scored_by_the_label_rule(gpt2, scripted_lm, tmp_path):
    """A checkpoint trained with data.answer_steps answers "Mary kitchen": --rule auto scores it by BABILong's label
    rule (right where the room is the target), exact match would score it 0; without that setting auto stays exact,
    and an unknown rule is refused."""
    n = 40
    targets = [s.target for s in build_samples("qa2", "0k", n, split="test", seed=0)]
    assert 0 < targets.count("kitchen") < n
    model = scripted_lm(gpt2, lambda prompt: "Mary kitchen")
    for trained, rule, expected in ((["qa2"], "auto", targets.count("kitchen")), (["qa2"], "exact", 0),
                                    ([], "auto", 0), ([], "label", targets.count("kitchen"))):
        folder = tmp_path / f"{rule}-{len(trained)}"
        folder.mkdir()
        (folder / "train_config.yaml").write_text(json.dumps({"data": {"task": "babilong", "answer_steps": trained}}))
        summary = evaluate_babilong(LoadedModel(model, gpt2, path=folder, name="stepped"), ["qa2"], ["0k"], n=n,
                                    progress=False, rule=rule)
        assert summary["format"] == "finetune"
        assert summary["rule"] == ("label" if expected else "exact")
        assert summary["accuracy"]["qa2"]["0k"] == pytest.approx(100.0 * expected / n)
    with pytest.raises(ValueError, match="unknown scoring rule 'labels'"):
        evaluate_babilong(LoadedModel(model, gpt2, path=folder, name="stepped"), ["qa2"], ["0k"], n=2,
                          progress=False, rule="labels")


def test_csv_rescored_by_lm2_score_babilong_gives_the_same_number(gpt2, scripted_lm, tmp_path, capsys):
    from lm2.cli import main

    # A model right on some samples and wrong on others: "kitchen" or "hallway" by the prompt's length.
    model = scripted_lm(gpt2, lambda prompt: "kitchen" if len(prompt) % 2 else "the hallway.")
    summary = evaluate_babilong(loaded(model, gpt2), ["qa1", "qa2"], ["0k", "1k"], n=12, fmt="instruction",
                                out_dir=tmp_path, progress=False)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["accuracy"] == summary["accuracy"]
    for task, per_length in summary["accuracy"].items():
        for length, accuracy in per_length.items():
            path = tmp_path / f"{task}_{length}.csv"
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            assert list(rows[0]) == ["target", "output", "question"] and len(rows) == 12
            assert score_csv(path, task, rule="label") == pytest.approx(accuracy)
            capsys.readouterr()
            assert main(["score", "babilong", str(path), "--task", task, "--rule", "label"]) == 0
            assert f"{accuracy:.2f}%" in capsys.readouterr().out
    assert (tmp_path / "babilong.png").stat().st_size > 0
    assert "qa1" in results_table(summary)


def test_streaming_answers_do_not_depend_on_the_segment_length(gpt2):
    """An LM2 model with a window and memory gives the same greedy answers whatever the pieces it reads."""
    from helpers import memory_model

    model = memory_model(vocab_size=len(gpt2), sliding_window=32, memory_update_interval=24)
    lm = loaded(model, gpt2)
    samples = build_samples("qa1", "1k", 1, split="test", seed=0)
    prompts = [prompt_ids(s, gpt2, "finetune") for s in samples]
    with torch.no_grad():
        a = [generate_answers(lm, [p], max_new_tokens=4, segment_length=1000) for p in prompts]
        b = [generate_answers(lm, [p], max_new_tokens=4, segment_length=77) for p in prompts]
    assert a == b


@pytest.mark.parametrize("kind", ["lm2", "rmt"])
def test_batched_streaming_gives_the_answers_of_single_prompts(kind, gpt2, tmp_path):
    """Batches only pad by multiples of U (LM2) or S (RMT), which leaves every answer unchanged."""
    from helpers import memory_model

    from lm2.rmt import RMTConfig, RMTForCausalLM

    if kind == "lm2":
        model = memory_model(vocab_size=len(gpt2), sliding_window=16, memory_update_interval=3)
    else:
        torch.manual_seed(0)
        model = RMTForCausalLM(RMTConfig.from_preset("tiny", vocab_size=len(gpt2), hidden_size=32,
                                                     intermediate_size=64, num_attention_heads=4,
                                                     num_key_value_heads=2, rmt_memory_tokens=2,
                                                     rmt_segment_length=3)).eval()
    lm, outputs = loaded(model, gpt2), {}
    for batch in (1, 4):
        evaluate_babilong(lm, ["qa2"], ["0k"], n=12, fmt="finetune", batch_size=batch, max_new_tokens=3,
                          segment_length=10, out_dir=tmp_path / str(batch), progress=False)
        outputs[batch] = (tmp_path / str(batch) / "qa2_0k.csv").read_text()
    assert outputs[1] == outputs[4]


def test_batch_plan_pads_by_multiples():
    lengths = [10, 7, 13, 4, 9, 16, 12]
    batches = plan_batches(lengths, 2, multiple=3)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for b in batches:
        assert len(b) <= 2 and len({lengths[i] % 3 for i in b}) == 1
    assert plan_batches(lengths, 3) == [[5, 2, 6], [0, 4, 1], [3]]  # longest first


def test_rmt_and_hf_models_run_end_to_end(gpt2, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from lm2.rmt import RMTConfig, RMTForCausalLM

    torch.manual_seed(0)
    small = dict(vocab_size=len(gpt2), hidden_size=32, intermediate_size=64, num_attention_heads=4,
                 num_key_value_heads=2, num_hidden_layers=2)
    rmt = RMTForCausalLM(RMTConfig.from_preset("tiny", rmt_memory_tokens=4, rmt_segment_length=128, **small)).eval()
    llama = LlamaForCausalLM(LlamaConfig(max_position_embeddings=2048, **small)).eval()
    for model, batch in ((rmt, 2), (llama, 2)):
        summary = evaluate_babilong(loaded(model, gpt2), ["qa1"], ["0k", "1k"], n=3, fmt="finetune", batch_size=batch,
                                    max_new_tokens=3, segment_length=200, out_dir=tmp_path / type(model).__name__,
                                    progress=False)
        assert set(summary["accuracy"]["qa1"]) == {"0k", "1k"}


def test_hf_batching_gives_the_answers_of_single_prompts(gpt2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(gpt2), hidden_size=32, intermediate_size=64,
                                         num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2,
                                         max_position_embeddings=1024)).eval()
    lm = loaded(llama, gpt2)
    prompts = [prompt_ids(s, gpt2, "finetune") for s in build_samples("qa2", "0k", 4, split="test", seed=0)]
    assert len({len(p) for p in prompts}) > 1  # the batch needs padding
    alone = [generate_answers(lm, [p], max_new_tokens=5)[0] for p in prompts]
    assert generate_answers(lm, prompts, max_new_tokens=5) == alone


def test_a_non_streaming_model_refuses_a_context_longer_than_its_positions(gpt2):
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(gpt2), hidden_size=16, intermediate_size=32,
                                         num_attention_heads=2, num_key_value_heads=1, num_hidden_layers=1,
                                         max_position_embeddings=512))
    with pytest.raises(ValueError, match="cannot stream"):
        evaluate_babilong(loaded(llama, gpt2), ["qa1"], ["0k", "1k"], n=2, fmt="finetune", progress=False)
    prompt = prompt_ids(build_samples("qa1", "0k", 1)[0], gpt2, "finetune")
    with pytest.raises(ValueError, match="max_position_embeddings"):
        generate_answers(loaded(llama, gpt2), [prompt * 40])


def test_task_and_length_arguments():
    assert parse_tasks("qa1-qa5") == ["qa1", "qa2", "qa3", "qa4", "qa5"]
    assert parse_tasks("qa3,qa1,qa3") == ["qa3", "qa1"]
    assert len(parse_tasks("all")) == 10
    assert parse_lengths("4k,0k,1000") == ["0k", "1k", "4k"]
    for bad in ("qa11", "qa5-qa1", "task1"):
        with pytest.raises(ValueError):
            parse_tasks(bad)
    for bad in ("3k", "long", "-1k"):
        with pytest.raises(ValueError, match="BABILong length"):
            parse_lengths(bad)


def test_folders_that_are_not_models_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "no-such-model"}')
    with pytest.raises(ValueError, match="not a model folder"):
        load_model(tmp_path)
    with pytest.raises(ValueError, match="neither a known model name nor an existing folder"):
        load_model(tmp_path / "missing")


def test_a_saved_checkpoint_loads_and_evaluates_from_the_command_line(gpt2, tmp_path, capsys):
    from helpers import memory_model

    from lm2.cli import main

    model = memory_model(vocab_size=len(gpt2), sliding_window=16)
    model.save_pretrained(tmp_path / "ckpt")
    gpt2.save_pretrained(str(tmp_path / "ckpt"))
    out = tmp_path / "out"
    code = main(["eval", "babilong", "--model", str(tmp_path / "ckpt"), "--tasks", "qa1", "--lengths", "0k",
                 "--n", "2", "--format", "finetune", "--max-new-tokens", "2", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "qa1" in capsys.readouterr().out and (out / "qa1_0k.csv").exists()
    code = main(["eval", "babilong", "--model", str(tmp_path / "ckpt"), "--tasks", "qa1", "--lengths", "0k",
                 "--n", "3", "--format", "finetune", "--max-new-tokens", "2", "--out", str(out), "--no-progress",
                 "--resume"])
    assert code == 0 and json.loads((out / "summary.json").read_text())["reused"] == {"qa1": {"0k": 2}}
    assert len((out / "qa1_0k.csv").read_text().splitlines()) == 1 + 3
    assert main(["eval", "babilong", "--model", str(tmp_path), "--tasks", "qa1", "--no-progress"]) == 2
    assert main(["eval", "babilong", "--model", str(tmp_path / "ckpt"), "--tasks", "qa0", "--no-progress"]) == 2


def test_summary_means_and_the_8k_aggregate():
    tasks = ["qa1", "qa2", "qa3", "qa4", "qa5"]
    lengths = ["4k", "8k", "16k"]
    accuracy = {t: {"4k": 50.0 + i, "8k": 40.0 + i, "16k": 20.0 + i} for i, t in enumerate(tasks)}
    s = summarize(accuracy, tasks, lengths)
    assert s["mean_qa1_qa5"]["4k"] == pytest.approx(52.0)
    assert s["aggregate_8k_plus"]["qa2"] == pytest.approx(31.0)
    assert s["aggregate_8k_plus"]["mean_qa1_qa5"] == pytest.approx(32.0)


@pytest.mark.slow
def test_a_128k_sample_streams_through_a_tiny_model(gpt2):
    """The issue's requirement: a 128k-token sample runs on this machine with a tiny LM2 (window + memory)."""
    from helpers import memory_model

    model = memory_model(vocab_size=len(gpt2), sliding_window=64, memory_update_interval=64)
    sample = build_samples("qa1", "128k", 1, split="test", seed=0)[0]
    prompt = prompt_ids(sample, gpt2, "finetune")
    assert len(prompt) > 120_000
    sizes = []
    answer = generate_answers(loaded(model, gpt2), [prompt], max_new_tokens=2, segment_length=2048,
                              on_tokens=lambda n: sizes.append(n))
    assert isinstance(answer[0], str) and sum(sizes) == len(prompt)


# ----------------------------------------------------------------------------- resuming


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def counting(answer_of, fail_after=None):
    """``answer_of`` that records the distinct prompts it answered and raises on the (fail_after + 1)-th."""
    asked = []

    def answer(prompt):
        if prompt not in asked:
            if fail_after is not None and len(asked) == fail_after:
                raise KeyboardInterrupt("stopped by the test")
            asked.append(prompt)
        return answer_of(prompt)

    return answer, asked


def test_resuming_a_smaller_n_and_an_interrupted_run_gives_the_answers_of_one_full_run(gpt2, scripted_lm, tmp_path):
    tasks, lengths, kw = ["qa1", "qa2"], ["0k"], dict(fmt="instruction", progress=False)

    def answer_of(prompt):
        return "kitchen" if len(prompt) % 3 else "the hallway."  # right and wrong answers

    full = evaluate_babilong(loaded(scripted_lm(gpt2, answer_of), gpt2), tasks, lengths, n=10,
                             out_dir=tmp_path / "full", **kw)

    # 4 samples per task first; then n = 10, stopped after 3 new answers of qa1 ...
    evaluate_babilong(loaded(scripted_lm(gpt2, answer_of), gpt2), tasks, lengths, n=4, out_dir=tmp_path / "r", **kw)
    stopping, _ = counting(answer_of, fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        evaluate_babilong(loaded(scripted_lm(gpt2, stopping), gpt2), tasks, lengths, n=10, out_dir=tmp_path / "r",
                          resume=True, **kw)
    partial = tmp_path / "r" / "qa1_0k.partial.jsonl"
    assert len(partial.read_text().splitlines()) == 3 and len(rows(tmp_path / "r" / "qa1_0k.csv")) == 4
    # ... a torn last line (killed while writing) is ignored ...
    with open(partial, "a") as f:
        f.write('{"index": 7, "tar')
    # ... and the resumed run asks the model only for the answers still missing: 3 of qa1, 6 of qa2.
    answer, asked = counting(answer_of)
    resumed = evaluate_babilong(loaded(scripted_lm(gpt2, answer), gpt2), tasks, lengths, n=10,
                                out_dir=tmp_path / "r", resume=True, **kw)
    assert len(asked) == 3 + 6
    assert resumed["reused"] == {"qa1": {"0k": 7}, "qa2": {"0k": 4}}
    assert resumed["accuracy"] == full["accuracy"]
    for task in tasks:
        assert rows(tmp_path / "r" / f"{task}_0k.csv") == rows(tmp_path / "full" / f"{task}_0k.csv")
    assert not list((tmp_path / "r").glob("*.partial.jsonl"))
    # Resuming a finished run generates nothing.
    answer, asked = counting(answer_of)
    again = evaluate_babilong(loaded(scripted_lm(gpt2, answer), gpt2), tasks, lengths, n=10,
                              out_dir=tmp_path / "r", resume=True, **kw)
    assert asked == [] and again["accuracy"] == full["accuracy"]


def test_resuming_refuses_answers_it_cannot_reuse(gpt2, scripted_lm, tmp_path):
    model = loaded(scripted_lm(gpt2, lambda prompt: "kitchen"), gpt2)
    kw = dict(fmt="instruction", progress=False)
    evaluate_babilong(model, ["qa1"], ["0k"], n=5, out_dir=tmp_path, **kw)
    before = (tmp_path / "qa1_0k.csv").read_text()
    with pytest.raises(ValueError, match="shots 0 there, 1 now"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=5, shots=1, out_dir=tmp_path, resume=True, **kw)
    with pytest.raises(ValueError, match="holds 5 answers, more than --n 3"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=3, out_dir=tmp_path, resume=True, **kw)
    with pytest.raises(ValueError, match="needs the output folder"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=5, resume=True, **kw)
    assert (tmp_path / "qa1_0k.csv").read_text() == before  # nothing saved was lost
    (tmp_path / "qa1_0k.csv").write_text("target,output\nkitchen,kitchen\n")  # an edited CSV, no questions
    with pytest.raises(ValueError, match=r"cannot resume: .*qa1_0k.csv: missing column\(s\) \['question'\]"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=5, out_dir=tmp_path, resume=True, **kw)
    # Answers saved for other samples (here: another seed's, under this seed's summary) are refused.
    other = tmp_path / "other"
    evaluate_babilong(model, ["qa1"], ["0k"], n=5, seed=1, out_dir=other, **kw)
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "seed": 0}))
    with pytest.raises(ValueError, match="saved answer 0 is for another sample"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=5, out_dir=other, resume=True, **kw)
    # A run stopped inside its first task has already written its settings.
    stopped = tmp_path / "stopped"
    answer, _ = counting(lambda prompt: "kitchen", fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate_babilong(loaded(scripted_lm(gpt2, answer), gpt2), ["qa1"], ["0k"], n=5, out_dir=stopped, **kw)
    with pytest.raises(ValueError, match="shots 0 there, 1 now"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=5, shots=1, out_dir=stopped, resume=True, **kw)
    (other / "summary.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        evaluate_babilong(model, ["qa1"], ["0k"], n=5, out_dir=other, resume=True, **kw)


def test_a_fresh_run_refuses_a_folder_with_answers_unless_told_to_overwrite(gpt2, scripted_lm, tmp_path, capsys):
    """Without --resume, answers already in --out are never replaced silently; --overwrite deletes all of them
    (other tasks and lengths too), so that a folder never mixes answers made with different settings."""
    from helpers import memory_model

    from lm2.cli import main

    kw = dict(fmt="instruction", progress=False, out_dir=tmp_path)
    evaluate_babilong(loaded(scripted_lm(gpt2, lambda prompt: "kitchen"), gpt2), ["qa1"], ["0k", "1k"], n=3, **kw)
    before = {p.name: p.read_text() for p in tmp_path.glob("*.csv")}
    assert sorted(before) == ["qa1_0k.csv", "qa1_1k.csv"]
    garden = loaded(scripted_lm(gpt2, lambda prompt: "garden"), gpt2)
    with pytest.raises(ValueError, match=r"already holds answers \(qa1_0k.csv, qa1_1k.csv\): add --resume"):
        evaluate_babilong(garden, ["qa1"], ["0k"], n=3, shots=1, **kw)
    (tmp_path / "qa2_4k.partial.jsonl").write_text("")  # an interrupted run's file counts too
    with pytest.raises(ValueError, match="choose one"):
        evaluate_babilong(garden, ["qa1"], ["0k"], n=3, resume=True, overwrite=True, **kw)
    assert {p.name: p.read_text() for p in tmp_path.glob("*.csv")} == before  # nothing lost
    summary = evaluate_babilong(garden, ["qa1"], ["0k"], n=3, shots=1, overwrite=True, **kw)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".csv", ".jsonl")) == ["qa1_0k.csv"]
    assert "garden" in (tmp_path / "qa1_0k.csv").read_text() and summary["shots"] == 1
    # the command line says the same, in one line
    model = tmp_path / "ckpt"
    memory_model(vocab_size=len(gpt2), sliding_window=16).save_pretrained(model)
    gpt2.save_pretrained(str(model))
    args = ["eval", "babilong", "--model", str(model), "--tasks", "qa1", "--lengths", "0k", "--n", "2",
            "--format", "finetune", "--max-new-tokens", "2", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 2 and "add --resume" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0 and json.loads((tmp_path / "summary.json").read_text())["n"] == 2


def test_appended_records_skip_only_a_torn_last_line(tmp_path):
    """The partial files of --resume (BABILong answers, MMLU subjects): a killed run's half-written last line is
    dropped, a bad line anywhere else is an error naming it."""
    from lm2.eval.common import appended_records

    path = tmp_path / "run.partial.jsonl"
    assert appended_records(path) == []
    path.write_text('{"index": 0}\n{"index": 1}\n{"ind')
    assert appended_records(path) == [{"index": 0}, {"index": 1}]
    path.write_text('{"index": 0}\n{"ind\n{"index": 2}\n')
    with pytest.raises(ValueError, match=r"run.partial.jsonl:2: not valid JSON"):
        appended_records(path)


def test_precision_bf16_autocasts_the_evaluation(gpt2, tmp_path, monkeypatch):
    """--precision bf16 runs the evaluation under bf16 autocast (its matrix products come out in bf16); fp32
    changes nothing; an unknown precision is a usage error."""
    from helpers import memory_model

    from lm2.cli import main
    from lm2.eval import babilong as babilong_module
    from lm2.precision import precision_context

    layer = torch.nn.Linear(4, 4)
    with precision_context("cpu", "bf16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with precision_context("cpu", "fp32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="precision='fp16' is invalid"):
        precision_context("cpu", "fp16")

    model = memory_model(vocab_size=len(gpt2), sliding_window=16)
    model.save_pretrained(tmp_path / "ckpt")
    gpt2.save_pretrained(str(tmp_path / "ckpt"))
    seen = []
    real = babilong_module.evaluate_babilong

    def spy(*args, **kwargs):
        seen.append(torch.is_autocast_enabled("cpu"))
        return real(*args, **kwargs)

    monkeypatch.setattr(babilong_module, "evaluate_babilong", spy)
    common = ["eval", "babilong", "--model", str(tmp_path / "ckpt"), "--tasks", "qa1", "--lengths", "0k", "--n", "2",
              "--format", "finetune", "--max-new-tokens", "2", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "bf16"), "--precision", "bf16"]) == 0
    assert main([*common, "--out", str(tmp_path / "fp32")]) == 0
    assert seen == [True, False]
    assert len((tmp_path / "bf16" / "qa1_0k.csv").read_text().splitlines()) == 1 + 2
    assert main([*common, "--out", str(tmp_path / "x"), "--precision", "fp16"]) == 2
