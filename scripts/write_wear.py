"""How much the background text of a long BABILong prompt wears down an LM2 checkpoint's memory.

For each memory block, over n test samples per length: the mean write strength (``memory_write_gate: token``) of the
tokens inside the story's fact sentences and of the background tokens around them, the share of background tokens
that write at all (strength at or above ``memory_write_threshold``, or above zero without one), and how much of a
slot survives the background: every write is affine in the bank, M' = A * M + B elementwise, so the part of a slot
kept through one write is A = write(ones) - write(zeros), and through the prompt the product of A over its chunks
that hold no fact token. Printed per block: that product, averaged over a slot's entries, for the median slot and
the least kept slot (1 = the background leaves the bank alone, 0 = it has replaced every slot).

    python scripts/write_wear.py runs/qa1-memory/lm2/words/ckpt-000400 --lengths 1k,16k,32k --n 5
    python scripts/write_wear.py runs/qa1-memory/lm2/words/ckpt-000400 --lengths 1k --n 3 --writers 4  # which tokens
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import torch

import lm2.memory as memory_module
from lm2.cache import stream
from lm2.data.babilong import build_samples, fact_spans, finetune_prompt
from lm2.eval.babilong import prompt_ids
from lm2.eval.common import load_model
from lm2.train.loop import write_strengths


def fact_mask(prompt: str, facts: list[str], ids: list[int], tokenizer) -> list[bool]:
    """Whether each of ``ids`` (the prompt's ids, perhaps after a beginning-of-text token) overlaps one of the
    story's fact sentences in ``prompt``, found in order."""
    spans = fact_spans(prompt, facts)
    if None in spans:
        raise ValueError(f"fact {facts[spans.index(None)]!r} is not in the prompt where the facts before it end")
    offsets = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)["offset_mapping"]
    shift = len(ids) - len(offsets)
    if shift < 0:
        raise ValueError("the prompt's ids are shorter than its tokenisation: not a finetune prompt")
    mask = [False] * len(ids)
    for i, (a, b) in enumerate(offsets):
        mask[i + shift] = any(a < end and b > begin for begin, end in spans)
    return mask


class WearRecorder:
    """Records, while a prompt streams, each memory block's write strengths (per token, as the trainer's write
    penalty collects them: ``lm2.train.loop.write_strengths``) and the part of each slot entry that every write
    keeps (per chunk), by hooks on the blocks and a wrapper around ``gated_write``."""

    def __init__(self, model):
        self.blocks = [m for m in model.modules() if isinstance(m, memory_module.LM2Memory)]
        if not self.blocks:
            raise ValueError("this model has no memory blocks (a vanilla or RMT checkpoint?): nothing to wear down")
        self.strengths = [[] for _ in self.blocks]
        self.kept = [[] for _ in self.blocks]
        self._current = 0

    def __enter__(self) -> "WearRecorder":
        self._original = memory_module.gated_write
        recorder = self

        def wrapped(memory, stats, fused, write_mode, update="gated"):
            ones, zeros = torch.ones_like(memory), torch.zeros_like(memory)
            keep = recorder._original(ones, stats, fused, write_mode, update) \
                - recorder._original(zeros, stats, fused, write_mode, update)
            recorder.kept[recorder._current].append(keep[0].detach().clamp(0.0, 1.0))
            return recorder._original(memory, stats, fused, write_mode, update)

        memory_module.gated_write = wrapped
        self._hooks = [block.register_forward_pre_hook(lambda mod, args, i=i: setattr(self, "_current", i))
                       for i, block in enumerate(self.blocks)]
        gated = [i for i, block in enumerate(self.blocks) if hasattr(block, "write_gate")]
        self._strengths = write_strengths([self.blocks[i].write_gate for i in gated])
        for i, collected in zip(gated, self._strengths.__enter__()):
            self.strengths[i] = collected  # one (1, T_segment) tensor per segment; blocks without a gate: none
        return self

    def __exit__(self, *exc) -> bool:
        memory_module.gated_write = self._original
        self._strengths.__exit__(None, None, None)
        for hook in self._hooks:
            hook.remove()
        return False

    def clear(self) -> None:
        for lists in (self.strengths, self.kept):
            for entries in lists:
                entries.clear()


def wear(model, tokenizer, sample, segment_length: int, interval: int, recorder: WearRecorder,
         with_tokens: bool = False) -> list[dict]:
    """One sample's statistics per memory block (see the module docstring); with ``with_tokens`` also each token's
    text, whether it is a fact token, and its write strength (for ``writers``)."""
    ids = list(prompt_ids(sample, tokenizer, "finetune", 0))
    facts = torch.tensor(fact_mask(finetune_prompt(sample), list(sample.facts), ids, tokenizer))
    texts = [tokenizer.decode([t]) for t in ids] if with_tokens else None  # decoded once, shared by the blocks
    recorder.clear()
    stream(model, torch.tensor([ids]), segment_length)
    rows = []
    for i, block in enumerate(recorder.blocks):
        row = {}
        if recorder.strengths[i]:
            strength = torch.cat(recorder.strengths[i], dim=1)[0, :len(ids)]
            background = strength[~facts]
            cut = block.write_threshold
            row.update(fact=float(strength[facts].mean()), background=float(background.mean()),
                       writing=float((background >= cut).float().mean() if cut else (background > 0).float().mean()))
        keep = torch.stack(recorder.kept[i])  # (chunks, N, D): chunk c covers tokens [c U, (c + 1) U)
        quiet = torch.tensor([not bool(facts[c * interval:(c + 1) * interval].any()) for c in range(len(keep))])
        slots = keep[quiet].clamp_min(1e-12).log().sum(dim=0).exp().mean(dim=-1)  # (N,)
        row.update(median=float(slots.median()), least=float(slots.min()), chunks=int(quiet.sum()))
        if texts is not None and recorder.strengths[i]:
            row["tokens"] = list(zip(texts, facts.tolist(), strength.tolist()))
        rows.append(row)
    return rows


def writers(tokens: list[tuple[str, bool, float]], at: float, k: int) -> str:
    """Which tokens carry a block's writes: the ``k`` fact tokens with the highest mean strength (seen at least twice),
    and the ``k`` background tokens that most often write with strength ``at`` or more."""
    fact, loud, background = {}, Counter(), 0
    for text, is_fact, strength in tokens:
        if is_fact:
            fact.setdefault(text, []).append(strength)
        else:
            background += 1
            loud[text] += strength >= at
    means = sorted(((statistics.fmean(v), text, len(v)) for text, v in fact.items() if len(v) > 1), reverse=True)
    top = ", ".join(f"{text!r} {mean:.3f} ({n})" for mean, text, n in means[:k])
    often = ", ".join(f"{text!r} {n}" for text, n in loud.most_common(k) if n)
    return (f"fact tokens writing most (mean strength, count): {top}; background tokens at >= {at:g}: "
            f"{sum(loud.values())} of {background}" + (f", most often {often}" if often else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--lengths", default="1k,16k")
    parser.add_argument("--task", default="qa1")
    parser.add_argument("--n", type=int, default=5, help="test samples per length")
    parser.add_argument("--segment-length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0, help="seed of the test samples")
    parser.add_argument("--writers", type=int, default=0, metavar="K",
                        help="also name the K fact tokens that write most strongly and the K background tokens that "
                             "most often write at --at or more (over all samples of a length)")
    parser.add_argument("--at", type=float, default=0.05, help="the strength --writers counts as a write")
    args = parser.parse_args()
    loaded = load_model(args.model)
    model, tokenizer = loaded.model, loaded.tokenizer
    interval = model.config.memory_update_interval
    with torch.no_grad(), WearRecorder(model) as recorder:
        for length in args.lengths.split(","):
            per_sample = [wear(model, tokenizer, sample, args.segment_length, interval, recorder, bool(args.writers))
                          for sample in build_samples(args.task, length, args.n, split="test", seed=args.seed)]
            for i in range(len(recorder.blocks)):
                rows = [rows[i] for rows in per_sample]
                mean = {key: statistics.fmean(row[key] for row in rows) for key in rows[0] if key != "tokens"}
                text = f"{length} block {i}: "
                if "fact" in mean:
                    text += (f"write strength {mean['fact']:.3f} on fact tokens, {mean['background']:.4f} on "
                             f"background ({100 * mean['writing']:.1f}% of background tokens write); ")
                print(text + f"a slot kept through {mean['chunks']:.0f} background chunks: median slot "
                      f"{mean['median']:.3f}, least kept {mean['least']:.3f} (mean of {args.n} samples)")
                if args.writers and "tokens" in rows[0]:
                    print(f"  {length} block {i}: " + writers([t for row in rows for t in row["tokens"]],
                                                           args.at, args.writers))


if __name__ == "__main__":
    main()
