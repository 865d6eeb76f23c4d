"""AdamW with decoupled weight decay on the right parameters, and the warmup + cosine (+ cooldown) lr schedule."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float, cooldown_steps: int = 0) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based): linear warmup from 1/warmup to 1, then a
    cosine from 1 down to ``min_ratio`` at ``total_steps``. With ``cooldown_steps`` K > 0 the cosine spans the
    steps before the last K, which then fall linearly from ``min_ratio`` to min_ratio / K (the last step's
    factor; zero would be a wasted step): a run that keeps a high lr to the end still finishes on a settled
    model. A cooldown longer than the steps after warm-up (a run shortened by an override, e.g. ``--train.steps
    5``) covers those steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    cooldown_steps = min(cooldown_steps, max(0, total_steps - warmup_steps))
    cosine_end = total_steps - cooldown_steps
    if cooldown_steps and step >= cosine_end:
        return min_ratio * (total_steps - step) / cooldown_steps
    progress = min(1.0, (step - warmup_steps) / max(1, cosine_end - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def no_decay(name: str, param: torch.Tensor) -> bool:
    """Norm weights, biases, embeddings, the learned initial memory bank and the attention convolution get no weight
    decay: decaying them pulls scales (norms), offsets (biases) and identity-initialised weights (the bank, the
    convolution) toward zero for no benefit."""
    return (param.dim() < 2 or "embed_tokens" in name or "initial_memory" in name or "memory_embeddings" in name
            or "qkv_conv" in name)


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, betas, fused: bool | None = None,
                    backbone_lr: float | None = None):
    """AdamW over the trainable parameters, in groups by weight decay (decay / none) and, with ``backbone_lr``,
    by learning rate: the memory modules' parameters (".memory." in the name) at ``lr``, the others at
    ``backbone_lr``. The schedule scales every group's lr by the same factor.

    A tied LM head (lm_head.weight is embed_tokens.weight) appears once: named_parameters() de-duplicates.
    """
    groups: dict[tuple[bool, float], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            group_lr = lr if backbone_lr is None or ".memory." in name else backbone_lr
            groups.setdefault((no_decay(name, param), group_lr), []).append(param)
    return torch.optim.AdamW([{"params": params, "weight_decay": 0.0 if plain else weight_decay, "lr": group_lr}
                              for (plain, group_lr), params in sorted(groups.items(), key=_main_group_first(lr))],
                             lr=lr, betas=tuple(betas), fused=fused)


def _main_group_first(lr: float):
    """Group order: the ``lr`` groups first (so a logged ``get_last_lr()[0]`` is train.lr's), decay before none."""
    return lambda item: (item[0][1] != lr, item[0][0])


def build_scheduler(optimizer, warmup_steps: int, total_steps: int, min_ratio: float, cooldown_steps: int = 0):
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, warmup_steps, total_steps, min_ratio, cooldown_steps))
