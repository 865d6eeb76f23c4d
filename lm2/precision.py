"""Numeric precision, the same for training and evaluation: "fp32" (nothing changes) or "bf16" (torch.autocast to
bfloat16: matrix products in bf16, LM2's memory bank keeps its fp32 recurrence, tests/test_precision.py).
bf16 is for GPUs: on CPUs without bf16 units a step is many times slower than in fp32."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def precision_context(device: str | torch.device, precision: str):
    """A context that runs the code inside it at ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is invalid: use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
