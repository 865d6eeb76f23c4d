"""Fixtures for the training tests: a tiny text corpus and a tiny BPE tokenizer, built once per session."""

from __future__ import annotations

import random

import pytest

WORDS = ("mary john sandra daniel went to the kitchen garden office hallway bedroom bathroom took dropped apple "
         "milk football where is it was a long day and the night came slowly over the hills").split()


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    """A folder with a small .txt corpus (train.txt, val.txt) and a 300-token BPE tokenizer trained on it."""
    from lm2.data.tokenizers import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    for name, n in (("train", 3000), ("val", 400)):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))).capitalize() + "."
                     for _ in range(n)]
        (root / f"{name}.txt").write_text(" ".join(sentences))
    train_bpe_tokenizer(root / "train.txt", 300, out_dir=root / "tokenizer")
    return root


def small_lm_config(corpus_dir, default_out_dir, **sections):
    """A small pretraining config (overrides as dicts per section) that runs in about a second."""
    from lm2.train.config import from_dict

    values = {
        "out_dir": str(default_out_dir),
        "model": {"preset": "tiny", "config": {"hidden_size": 32, "intermediate_size": 64,
                                               "num_attention_heads": 4, "num_key_value_heads": 2,
                                               "memory_slots": 4, "memory_heads": 2,
                                               "memory_update_interval": 8, "sliding_window": 16}},
        "data": {"task": "lm", "tokenizer": str(corpus_dir / "tokenizer"), "source": str(corpus_dir / "train.txt"),
                 "val_source": str(corpus_dir / "val.txt"), "block_size": 48, "segment_length": 16,
                 "bptt_segments": 2},
        "train": {"steps": 6, "batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "seed": 0},
        "eval": {"interval": 3, "val_batches": 1},
        "checkpoint": {"interval": 2, "keep_last": 2},
    }
    for section, fields in sections.items():
        if isinstance(fields, dict):
            values.setdefault(section, {}).update(fields)
        else:
            values[section] = fields
    return from_dict(values)


@pytest.fixture()
def lm_config(corpus_dir, tmp_path):
    """A builder of small pretraining configs (as dicts of overrides) that run in about a second."""
    return lambda **sections: small_lm_config(corpus_dir, tmp_path / "run", **sections)


@pytest.fixture(scope="session")
def finished_run(corpus_dir, tmp_path_factory):
    """A finished 6-step run of the small config (checkpoints at steps 4 and 6, best/): copy it before changing it."""
    from lm2.train.loop import train

    cfg = small_lm_config(corpus_dir, tmp_path_factory.mktemp("finished") / "run")
    train(cfg, progress=False)
    return cfg
