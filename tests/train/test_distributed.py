"""Two processes (gloo, CPU) with B/2 sequences each train exactly like one process with B: DDP and FSDP2."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
from safetensors.torch import load_file

from lm2.train.config import from_dict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world_size: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def _worker(rank: int, world_size: int, port: int, values: dict) -> None:
    _join(rank, world_size, port)
    from lm2.train.loop import train

    train(from_dict(values), progress=False)


def _wrap_worker(rank: int, world_size: int, port: int, values: dict) -> None:
    _join(rank, world_size, port)
    from torch.distributed.fsdp import FSDPModule

    from lm2.train.loop import SegmentedLM, build_model
    from lm2.train.parallel import apply_parallelism, init_distributed, shutdown

    ctx, cfg = init_distributed("cpu", "gloo"), from_dict(values)
    model = build_model(cfg, vocab_size=300)
    apply_parallelism(model, SegmentedLM(model, cfg.data.segment_length), "fsdp", ctx)
    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    assert units == [model, *model.model.layers], [type(m).__name__ for m in units]
    shutdown(ctx)


def _losses(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines if json.loads(line)["kind"] == "train"]


@pytest.mark.distributed
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(strategy, lm_config, tmp_path):
    import torch.multiprocessing as mp

    # 2 accumulation steps of 2 sequences in one process == 2 processes x 1 step of 2 sequences.
    base = lm_config(train={"steps": 4, "batch_size": 4, "micro_batch_size": 2, "warmup_steps": 1},
                     eval={"interval": 0, "val_batches": 1}, checkpoint={"interval": 0, "keep_best": False}).to_dict()
    one = dict(base, out_dir=str(tmp_path / "one"))
    two = dict(base, out_dir=str(tmp_path / "two"), distributed={"strategy": strategy, "backend": "gloo"})
    mp.spawn(_worker, args=(1, _free_port(), one), nprocs=1, join=True)
    mp.spawn(_worker, args=(2, _free_port(), two), nprocs=2, join=True)

    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), abs=1e-5)
    a = load_file(str(tmp_path / "one" / "ckpt-000004" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "ckpt-000004" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-5, rtol=0, msg=name)


@pytest.mark.distributed
def test_fsdp_shards_every_decoder_block_as_its_own_unit(lm_config):
    """The blocks return their new state, so FSDP2 may copy the state it hooks: each block is one unit."""
    import torch.multiprocessing as mp

    mp.spawn(_wrap_worker, args=(2, _free_port(), lm_config().to_dict()), nprocs=2, join=True)


def _eval_worker(rank: int, world_size: int, port: int, values: dict, out: str) -> None:
    """Trains the run of ``values`` with a scorer that accepts targets before "h" in the alphabet (so the accuracy
    is known without a trained model) and records how many prompts this process decoded."""
    _join(rank, world_size, port)
    from lm2.train import loop

    decoded, greedy = [], loop.greedy_streaming
    loop.score = lambda outputs, samples, rule: [s.target < "h" for s in samples]

    def counting(model, prompts, *args, **kwargs):
        decoded.append(len(prompts))
        return greedy(model, prompts, *args, **kwargs)

    loop.greedy_streaming = counting
    loop.train(from_dict(values), progress=False)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(sum(decoded), f)


@pytest.mark.distributed
def test_ddp_splits_babilong_accuracy_between_processes(lm_config, tmp_path):
    """Under DDP each process decodes its share of the validation samples (3 + 2 of 5) and the summed counts give
    the accuracy of one process decoding all of them."""
    import torch.multiprocessing as mp

    from lm2.train.data import babilong_validation_samples

    base = lm_config(data={"task": "babilong", "babi_tasks": ["qa1"], "segment_length": 16, "bptt_segments": 0,
                           "curriculum": [{"steps": 2, "lengths": ["0k"]}]},
                     train={"steps": 2, "batch_size": 2, "micro_batch_size": 1, "warmup_steps": 1},
                     eval={"interval": 2, "val_batches": 1, "samples": 5, "lengths": ["0k"], "max_new_tokens": 2},
                     checkpoint={"interval": 0, "keep_best": False}).to_dict()
    expected = sum(s.target < "h" for s in babilong_validation_samples("qa1", "0k", 5)) / 5
    assert 0 < expected < 1  # the scorer separates the samples, so a wrong share or sum shows
    accuracy = {}
    for world_size in (1, 2):
        out = tmp_path / str(world_size)
        values = dict(base, out_dir=str(out / "run"))
        if world_size == 2:
            values["distributed"] = {"strategy": "ddp", "backend": "gloo"}
        out.mkdir()
        mp.spawn(_eval_worker, args=(world_size, _free_port(), values, str(out)), nprocs=world_size, join=True)
        evals = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
        accuracy[world_size] = [e["acc/qa1/0k"] for e in evals if e["kind"] == "eval"]
        counts = [json.loads((out / f"rank{r}.json").read_text()) for r in range(world_size)]
        assert counts == ([5] if world_size == 1 else [3, 2])
    assert accuracy[1] == accuracy[2] == [expected]
