"""`lm2 eval recall`: the score of a rigged model is known exactly, streaming equals one call, and the command
trains-then-scores end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from helpers import memory_model

from lm2.data.recall import RecallSpec, build_tokenizer, encode, make_samples
from lm2.eval.recall import answer_logits, parse_segments, recall_accuracy, recall_breakdown

ROOT = Path(__file__).resolve().parents[2]


class RecallOracle(nn.Module):
    """Knows every sample's next token (in the order the samples are scored) and predicts it everywhere."""

    def __init__(self, samples, tokenizer):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))  # a device to be found on
        self.vocab = len(tokenizer)
        self.next = [encode(s, tokenizer)[0][1:] + [0] for s in samples]
        self.calls = 0

    def forward(self, input_ids):
        rows = self.next[self.calls : self.calls + input_ids.shape[0]]
        self.calls += input_ids.shape[0]
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], self.vocab)
        for r, nxt in enumerate(rows):
            logits[r, torch.arange(len(nxt)), torch.tensor(nxt)] = 1.0
        return SimpleNamespace(logits=logits)


def test_accuracy_of_a_rigged_model_is_exact():
    spec = RecallSpec(pairs=3, queries=3)
    tok = build_tokenizer(spec)
    samples = make_samples(spec, 2, 10, seed=5)
    assert recall_accuracy(RecallOracle(samples, tok), tok, samples, segment_length=16, batch_size=4) == 1.0

    class Constant(nn.Module):  # always predicts v0: right exactly where the answer is v0
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            logits = torch.zeros(*input_ids.shape, len(tok))
            logits[..., tok.get_vocab()["v0"]] = 1.0
            return SimpleNamespace(logits=logits)

    expected = sum(s.words[p] == "v0" for s in samples for p in s.answers) / 30
    assert recall_accuracy(Constant(), tok, samples, segment_length=16) == pytest.approx(expected)


class FirstPairValue(nn.Module):
    """Answers every query of a sample with the value of the sample's first pair: a memory that stored one value
    and no keys."""

    def __init__(self, samples, tokenizer):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.vocab = tokenizer.get_vocab()
        self.samples, self.calls = samples, 0

    def forward(self, input_ids):
        rows = self.samples[self.calls : self.calls + input_ids.shape[0]]
        self.calls += input_ids.shape[0]
        logits = torch.zeros(*input_ids.shape, len(self.vocab))
        for r, sample in enumerate(rows):
            logits[r, :, self.vocab[sample.pairs[0][1]]] = 1.0
        return SimpleNamespace(logits=logits)


def test_breakdown_tells_unbound_values_from_unstated_ones():
    spec = RecallSpec(pairs=4, queries=4)
    tok = build_tokenizer(spec)
    samples = make_samples(spec, 1, 12, seed=7)
    found = recall_breakdown(FirstPairValue(samples, tok), tok, samples, segment_length=16, batch_size=5)
    asked = [(s.pairs[0][1], s.words[p]) for s in samples for p in s.answers]
    right = sum(first == truth for first, truth in asked) / len(asked)
    assert found["accuracy"] == pytest.approx(right) and 0 < right < 1
    assert found["other_pair"] == pytest.approx(1 - right) and found["unstated"] == 0
    by_query = [sum(s.pairs[0][1] == s.words[s.answers[q]] for s in samples) / len(samples) for q in range(4)]
    assert found["by_query"] == pytest.approx(by_query)
    # the oracle is right everywhere
    assert recall_breakdown(RecallOracle(samples, tok), tok, samples, segment_length=16)["accuracy"] == 1.0


def test_streamed_logits_equal_one_call():
    spec = RecallSpec(pairs=2, queries=2, segment_length=8)
    tok = build_tokenizer(spec)
    model = memory_model(vocab_size=len(tok), memory_update_interval=4, sliding_window=8)
    ids = torch.tensor([encode(s, tok)[0] for s in make_samples(spec, 3, 2, seed=1)])
    with torch.no_grad():
        torch.testing.assert_close(answer_logits(model, ids, 5), model(ids).logits, atol=2e-5, rtol=0)


def test_parse_segments():
    assert parse_segments("1,8,32") == [1, 8, 32]
    for bad in ("", "1,-2", "a"):
        with pytest.raises(ValueError, match="--segments"):
            parse_segments(bad)


def test_train_then_eval_recall_end_to_end(tmp_path, capsys):
    from lm2.cli import main

    run = tmp_path / "run"
    assert main(["train", "configs/recall-tiny.yaml", "--out_dir", str(run), "--no-progress",
                 "--data.curriculum", "[{steps: 2, distractors: [1]}]", "--eval.interval", "2",
                 "--eval.samples", "4", "--checkpoint.interval", "2", "--train.batch_size", "4"]) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["eval", "recall", "--model", str(run / "ckpt-000002"), "--segments", "0,3", "--n", "5",
                 "--no-progress", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("recall accuracy (%), 5 samples each: 0 segments ") and ", 3 segments " in last
    summary = json.loads((out / "recall.json").read_text())
    assert (out / "recall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["segments"] == [0, 3] and summary["kind"] == "lm2" and summary["chance"] == 100 / 32
    assert set(summary["errors"]["3"]) == {"other_pair", "unstated", "by_query"}
    # the probe script runs on the same checkpoint and names both of its accuracies
    probe = subprocess.run([sys.executable, str(ROOT / "scripts/probe_recall.py"), str(run / "ckpt-000002"),
                            "--n", "100"], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr
    assert "key decodable" in probe.stdout and "value decodable" in probe.stdout


def test_a_stage_gap_trains_on_gaps_and_eval_gap_scores_them(tmp_path, capsys):
    """A recall stage's gap is the gap of that stage's training samples; `lm2 eval recall --gap` tests a model on
    gaps it was not trained with (and the summary says which)."""
    from lm2.cli import main
    from lm2.train.config import load_config
    from lm2.train.data import RecallStream

    cfg = load_config("configs/recall-tiny.yaml", [
        "--data.curriculum", "[{steps: 2, distractors: [1], gap: 0}, {steps: 2, distractors: [1]}]",
        "--data.recall", "{gap: 2}", "--train.batch_size", "8"])
    spec = RecallSpec(gap=2)
    tok = build_tokenizer(spec)
    stream = RecallStream(cfg, tok)
    inv = {i: w for w, i in tok.get_vocab().items()}

    def gaps(step):  # the fillers between each key and the value after it, in step's samples
        found = set()
        for i in range(8):
            words = [inv[t] for t in stream.example(step, i)[0][:16]]
            keys = [j for j, w in enumerate(words) if w.startswith("k")]
            values = [j for j, w in enumerate(words) if w.startswith("v")]
            found |= {v - k - 1 for k, v in zip(keys, values)}
        return found

    assert gaps(0) == gaps(1) == {0} and gaps(2) | gaps(3) == {0, 1, 2}
    run = tmp_path / "run"
    assert main(["train", "configs/recall-tiny.yaml", "--out_dir", str(run), "--no-progress",
                 "--data.curriculum", "[{steps: 2, distractors: [1]}]", "--eval.interval", "2",
                 "--eval.samples", "4", "--checkpoint.interval", "2", "--train.batch_size", "4"]) == 0
    capsys.readouterr()
    assert main(["eval", "recall", "--model", str(run / "ckpt-000002"), "--segments", "1", "--n", "5", "--gap", "2",
                 "--no-progress", "--out", str(tmp_path / "e")]) == 0
    assert "gap 0-2" in capsys.readouterr().out
    assert json.loads((tmp_path / "e" / "recall.json").read_text())["gap"] == 2
    assert main(["eval", "recall", "--model", str(run / "ckpt-000002"), "--gap", "9", "--no-progress",
                 "--out", str(tmp_path / "e9")]) == 2
    err = capsys.readouterr().err
    assert "--gap 9" in err and "too short" in err and not (tmp_path / "e9").exists()


def test_a_stage_query_gap_asks_without_markers_first_and_eval_reports_it(tmp_path, capsys):
    """Stages may ask with the answer right after the key (query_gap 0) before the config's query_gap; the model's
    vocabulary has the marker throughout, and `lm2 eval recall` scores the config's query_gap."""
    from lm2.cli import main
    from lm2.data.recall import ANSWER, QUERY
    from lm2.train.config import load_config
    from lm2.train.data import RecallStream

    cfg = load_config("configs/recall-tiny.yaml", [
        "--data.curriculum", "[{steps: 2, distractors: [1], query_gap: 0}, {steps: 2, distractors: [1]}]",
        "--data.recall", "{query_gap: 2}", "--train.batch_size", "8"])
    tok = build_tokenizer(RecallSpec(query_gap=2))
    stream = RecallStream(cfg, tok)
    inv = {i: w for w, i in tok.get_vocab().items()}

    def before_answers(step):  # the two words before each supervised answer of step's samples
        found = set()
        for i in range(8):
            ids, labels = stream.example(step, i)
            found |= {(inv[ids[p - 2]], inv[ids[p - 1]]) for p, lab in enumerate(labels) if lab != -100}
        return found

    assert {q for q, _ in before_answers(0)} == {QUERY} and {q for q, _ in before_answers(1)} == {QUERY}
    assert before_answers(2) | before_answers(3) == {(ANSWER, ANSWER)}
    run = tmp_path / "run"
    assert main(["train", "configs/recall-tiny.yaml", "--out_dir", str(run), "--no-progress",
                 "--data.recall", "{query_gap: 2}", "--data.curriculum", "[{steps: 2, distractors: [1]}]",
                 "--eval.interval", "2", "--eval.samples", "4", "--checkpoint.interval", "2",
                 "--train.batch_size", "4"]) == 0
    capsys.readouterr()
    assert main(["eval", "recall", "--model", str(run / "ckpt-000002"), "--segments", "1", "--n", "5",
                 "--no-progress", "--out", str(tmp_path / "e")]) == 0
    assert "query gap 2" in capsys.readouterr().out
    assert json.loads((tmp_path / "e" / "recall.json").read_text())["query_gap"] == 2
    assert main(["eval", "recall", "--model", str(run / "ckpt-000002"), "--segments", "1", "--n", "5",
                 "--query-gap", "0", "--no-progress", "--out", str(tmp_path / "e0")]) == 0  # asked without markers
    assert json.loads((tmp_path / "e0" / "recall.json").read_text())["query_gap"] == 0
    capsys.readouterr()
    plain = tmp_path / "plain"  # a model trained without markers has no marker token to ask with
    assert main(["train", "configs/recall-tiny.yaml", "--out_dir", str(plain), "--no-progress",
                 "--data.curriculum", "[{steps: 1, distractors: [1]}]", "--eval.interval", "1",
                 "--eval.samples", "4", "--checkpoint.interval", "1", "--train.batch_size", "4"]) == 0
    capsys.readouterr()
    assert main(["eval", "recall", "--model", str(plain / "ckpt-000001"), "--query-gap", "3", "--no-progress",
                 "--out", str(tmp_path / "e3")]) == 2
    err = capsys.readouterr().err
    assert "--query-gap 3" in err and "without answer markers" in err and not (tmp_path / "e3").exists()


def test_linear_probe_finds_a_planted_label_and_not_a_random_one():
    sys.path.insert(0, str(ROOT / "scripts"))
    from probe_recall import probe_accuracy

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 8, (800,), generator=gen)
    x = torch.cat([torch.nn.functional.one_hot(labels, 8).float() * 3, torch.randn(800, 8, generator=gen)], dim=1)
    assert probe_accuracy(x, labels, 8) == 1.0  # the label is a linear function of x
    noise = torch.randn(800, 16, generator=gen)
    assert probe_accuracy(noise, labels, 8) < 0.3  # chance is 1/8


def test_eval_recall_refuses_a_model_not_trained_on_recall(tmp_path, capsys):
    from lm2.cli import main

    folder = tmp_path / "m"
    memory_model().save_pretrained(folder)
    build_tokenizer(RecallSpec()).save_pretrained(str(folder))
    assert main(["eval", "recall", "--model", str(folder), "--no-progress", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train_config.yaml" in err[0]
    assert not (tmp_path / "e").exists()  # nothing written


@pytest.mark.parametrize("lag", [1, 3])
def test_lookback_choice_measures_the_weight_on_the_own_key(lag):
    """A model rigged to always choose the token ``lag`` back puts weight 1 on a value's own key exactly when that
    key is ``lag`` back (gap lag - 1), 0 otherwise: the script's number is the mean of that over the values."""
    import random as random_module

    sys.path.insert(0, str(ROOT / "scripts"))
    from lookback_choice import PROBE_SEED, own_key_weight

    from lm2.data.recall import make_sample

    spec = RecallSpec(gap=2)
    model = memory_model(vocab_size=len(build_tokenizer(spec)), memory_write_address="lookback",
                         memory_write_lookback=4, sliding_window=16, memory_update_interval=16)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.memory.lookback_score.weight.zero_()
            layer.memory.lookback_bias.copy_(torch.tensor([-30.0, -30.0, -30.0, -30.0]))
            layer.memory.lookback_bias[lag - 1] = 30.0
    rng = random_module.Random(PROBE_SEED)
    samples = [make_sample(spec, 1, rng) for _ in range(20)]
    expected = []
    for s in samples:
        words = s.words[:16]
        for pos, w in enumerate(words):
            if w.startswith("v"):
                own_key = max(j for j in range(pos) if words[j].startswith("k"))  # the nearest key before
                # with fewer than ``lag`` tokens before it, a value spreads its weight evenly over those there are
                expected.append(float(pos - lag == own_key) if pos >= lag else 1.0 / pos)
    weights = own_key_weight(model, spec, 20)
    assert set(weights) == {0, 1}
    for w in weights.values():
        assert w == pytest.approx(sum(expected) / len(expected), abs=1e-6)
    assert 0 in expected and 1 in expected  # both kinds of values occur: the test can fail


@pytest.mark.parametrize("lag", [4, 5])
def test_lookback_choice_on_babilong_measures_the_weight_of_a_room_on_its_person(lag):
    """The same rigged model on qa1 stories: a room is "Mary went to the kitchen": its person is as many tokens back
    as the fact has words after the name (here one token per word), so the weight is 1 exactly for those facts."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(ROOT / "scripts"))
    from lookback_choice import BABILONG_PROBE_SEED, room_person_weight

    from lm2.data.babilong import build_samples, finetune_prompt

    samples = build_samples("qa1", "0k", 12, split="train", seed=BABILONG_PROBE_SEED)
    split = pre_tokenizers.Whitespace()  # words and punctuation apart: one token per word
    words = sorted({w for s in samples for w, _ in split.pre_tokenize_str(finetune_prompt(s))})
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["<unk>", *words])}, unk_token="<unk>"))
    core.pre_tokenizer = split
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>")
    model = memory_model(vocab_size=len(tokenizer), memory_write_address="lookback", memory_write_lookback=6,
                         sliding_window=128, memory_update_interval=16)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.memory.lookback_score.weight.zero_()
            layer.memory.lookback_bias.fill_(-30.0)
            layer.memory.lookback_bias[lag - 1] = 30.0
    expected, profile = [], torch.zeros(6)
    for s in samples:
        pos = 0  # the story starts each prompt
        for fact in s.facts:
            back = len(fact.rstrip(".").split()) - 1  # "Mary went to the kitchen": the kitchen is 4 words on
            room = pos + back
            # a room with fewer than ``lag`` tokens before it spreads its weight evenly over those there are
            expected.append(float(back == lag) if room >= lag else 1.0 / room)
            if room >= lag:
                profile[lag - 1] += 1.0
            else:
                profile[:room] += 1.0 / room
            pos += back + 2  # the words, then the full stop
    weights = room_person_weight(model, tokenizer, 12)
    assert set(weights) == {0, 1}
    for w in weights.values():
        assert w == pytest.approx(sum(expected) / len(expected), abs=1e-6)
    assert 0 in expected and 1 in expected  # facts of both lengths occur: the test can fail
    by_lag = room_person_weight(model, tokenizer, 12, by_lag=True)  # --by-lag: where the rooms are filed
    assert set(by_lag) == {0, 1}
    for w in by_lag.values():
        torch.testing.assert_close(w, profile / len(expected), atol=1e-6, rtol=0)
    assert profile[lag - 1] > profile.sum() / 2  # most rooms on the rigged distance, not spread
