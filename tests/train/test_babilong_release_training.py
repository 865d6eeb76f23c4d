"""Training on a local copy of the official BABILong training data (data.babilong_path): every example is one of
its samples in the fine-tuning format, drawn deterministically; a bad path or a missing length is one clear line."""

from __future__ import annotations

import pytest

from helpers import write_release

from lm2.data.babilong import build_samples, finetune_example

TASKS, LENGTHS = ["qa1", "qa2"], ["0k", "1k"]


@pytest.fixture()
def release(tmp_path):
    samples = [s for t in TASKS for n in LENGTHS for s in build_samples(t, n, 3, split="train", seed=5)]
    return write_release(samples, tmp_path / "babilong-train", "json-lines"), samples


@pytest.fixture(scope="session")
def gpt2_tokenizer():
    from lm2.data.tokenizers import gpt2_tokenizer

    return gpt2_tokenizer()


def babilong_config(lm_config, path, **data):
    return lm_config(data={"task": "babilong", "babi_tasks": TASKS, "segment_length": 64, "bptt_segments": 0,
                           "tokenizer": "gpt2", "babilong_path": str(path),
                           "curriculum": [{"steps": 1, "lengths": ["0k"]}, {"steps": 1, "lengths": LENGTHS}], **data},
                     train={"steps": 0}, eval={"interval": 0, "samples": 0, "val_batches": 1, "lengths": ["0k"]})


def test_training_draws_its_examples_from_the_release(lm_config, release, gpt2_tokenizer):
    from lm2.train.data import make_stream
    from lm2.train.loop import train

    path, samples = release
    cfg = babilong_config(lm_config, path)
    expected = {tuple(finetune_example(s, gpt2_tokenizer)[0]): s for s in samples}
    stream = make_stream(cfg, gpt2_tokenizer, 0, 1, cfg.train.batch_size)
    drawn = [stream.example(step, i) for step in range(2) for i in range(cfg.train.batch_size)]
    for ids, labels in drawn:
        sample = expected[tuple(ids)]  # each example is one sample of the release, in the fine-tuning format
        assert (ids, labels) == tuple(map(list, finetune_example(sample, gpt2_tokenizer)))
    assert {expected[tuple(ids)].length for ids, _ in drawn[4:]} <= set(LENGTHS)
    assert len({expected[tuple(ids)].task for ids, _ in drawn}) == 2
    again = make_stream(cfg, gpt2_tokenizer, 0, 1, cfg.train.batch_size)
    assert [again.example(step, i) for step in range(2) for i in range(cfg.train.batch_size)] == drawn
    run = train(cfg, progress=False)  # the whole loop, two steps
    assert [r["step"] for r in run.history if r["kind"] == "train"] == [1, 2]


@pytest.mark.parametrize("change, message", [
    ({"babilong_path": "{missing}"}, "config field data.babilong_path {missing} does not exist: download the "
                                     "official BABILong release"),
    ({"curriculum": [{"steps": 1, "lengths": ["2k"]}]}, "config field data.babilong_path: {path} holds no qa1 "
                                                        "samples at length 2k"),
    ({"babi_tasks": ["qa3"]}, "holds no qa3 samples"),
    ({"supervise": "story"}, "data.babilong_path needs data.supervise=answer"),
])
def test_a_bad_babilong_path_is_refused_with_the_field(change, message, lm_config, release, tmp_path):
    path, _ = release
    missing = tmp_path / "missing"
    change = {k: str(v).format(missing=missing) if k == "babilong_path" else v for k, v in change.items()}
    with pytest.raises(ValueError) as err:
        babilong_config(lm_config, path, **change)
    assert message.format(missing=missing, path=path) in str(err.value)
