"""bf16 autocast against fp32 over a long stream: the memory bank's recurrence stays in fp32 under autocast (the
bank starts as the fp32 parameter M0 and every write mixes it with fp32 type promotion), so thousands of writes
do not let bf16 rounding pile up in it."""

from __future__ import annotations

import pytest
import torch

from helpers import memory_model

from lm2.cache import stream

# the memory options of the shipped BABILong config (a bank that is rewritten all the time)
DEMO_MEMORY = dict(memory_write="input", memory_update="replace", memory_write_gate="token", memory_read_scale=8.0,
                   memory_write_address="previous", memory_slot_keys=True, sliding_window=64,
                   memory_update_interval=16)


def run(model, ids, bf16: bool):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        cache, last = stream(model, ids, 1024)
    return [layer.memory.memory for layer in cache.layers], last.float()


@pytest.mark.slow
def test_bf16_stream_of_64k_tokens_stays_close_to_fp32():
    model = memory_model(**DEMO_MEMORY)
    ids = torch.randint(0, model.config.vocab_size, (1, 65536), generator=torch.Generator().manual_seed(0))
    banks32, logits32 = run(model, ids, bf16=False)
    banks16, logits16 = run(model, ids, bf16=True)
    for b32, b16 in zip(banks32, banks16):
        assert b16.dtype == torch.float32  # the recurrence itself never drops to bf16
        assert (b32 - b16).abs().max() <= 0.02 * b32.abs().max()  # 4,096 writes later, within bf16's rounding
    assert torch.nn.functional.cosine_similarity(logits32, logits16).item() > 0.999
    assert logits32.argmax() == logits16.argmax()
