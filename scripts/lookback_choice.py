"""Which token a `lookback` write address chooses, on the recall diagnostic or on BABILong qa1.

For each memory block of a model trained with ``memory_write_address: lookback``, prints the learned preference
per distance (b_1 .. b_L) and the mean weight that a token which must be stored under an earlier one puts on that
token: on the recall diagnostic, a value on its own key (over the first segment of ``--n`` samples); with
``--babilong``, the room of each fact of a qa1 story (0k) on the person who moved there ("Mary went to the
kitchen.": the kitchen on Mary, 4 or 5 words back), the binding a question about Mary must find. A model that has
not learned the choice puts on that token what the distance preference alone gives it; one that has, close to 1.

    python scripts/lookback_choice.py runs/recall-gap-tiny/ckpt-001200 [--gap 2] [--n 50] [--fresh]
    python scripts/lookback_choice.py runs/babilong-bind/lm2/ckpt-000250 --babilong [--n 100] [--by-lag]

``--fresh`` scores a freshly initialised model of the same config (the starting point). Samples come from a
seed of their own (recall: not the test seed; BABILong: stories of the train split, whose test split stays unseen).
"""

from __future__ import annotations

import argparse
import dataclasses
import random

import torch
from transformers import AutoTokenizer

from lm2 import LM2ForCausalLM
from lm2.data.babilong import build_samples, fact_spans, finetune_prompt
from lm2.data.recall import RecallSpec, build_tokenizer, encode, make_sample
from lm2.eval.recall import recall_spec_of
from lm2.memory import lookback_address

PROBE_SEED = "lookback-choice"
BABILONG_PROBE_SEED = 7_000_001  # a train-split stream no recipe trains on (their seeds are small integers)


def block_choices(model, ids: list[int]) -> dict[int, torch.Tensor]:
    """{block index: the lookback choice (T, L) of each token of ``ids``, weight on the token l back at [:, l-1]}."""
    states: dict[int, torch.Tensor] = {}
    blocks = {i: layer.memory for i, layer in enumerate(model.model.layers) if layer.memory is not None}
    for i, mem in blocks.items():
        if mem.write_address != "lookback":
            raise SystemExit(f"the model's write address is {mem.write_address!r}, not lookback")
        if getattr(model.model.layers[i], "write_after_attention", False):
            raise SystemExit("the model writes after attention (memory_write_after_attention); this script reads "
                             "the memory's input states, which that write does not use")
    hooks = [mem.register_forward_hook(lambda mod, args, out, i=i: states.__setitem__(i, args[0]))
             for i, mem in blocks.items()]
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
            return {i: lookback_address(mem.q_proj(states[i]), states[i], None, None, None, mem.q_proj,
                                        mem.lookback_score, mem.lookback_bias)[3][0] for i, mem in blocks.items()}
    finally:
        for hook in hooks:
            hook.remove()


def choice_stats(model, sequences) -> dict[int, tuple[float, torch.Tensor]]:
    """{block: (mean weight, (L,) mean choice)} over ``sequences``: (ids, [(token, the earlier token it must be stored
    under), ...]), in one forward pass per sequence. The weight is each token's on the token it must be stored under;
    the choice, its weight on the token 1, 2, ... L back, whichever token that is (``--by-lag``: where a binding is
    filed when it is not on its key)."""
    totals: dict[int, list] = {}
    for ids, targets in sequences:
        for i, choice in block_choices(model, ids).items():
            total = totals.setdefault(i, [0.0, torch.zeros(choice.shape[1]), 0])
            for pos, under in targets:
                lag = pos - under
                total[0] += float(choice[pos, lag - 1]) if 1 <= lag <= choice.shape[1] else 0.0
                total[1] += choice[pos]
                total[2] += 1
    return {i: (w / max(c, 1), lags / max(c, 1)) for i, (w, lags, c) in totals.items()}


def mean_weight(model, sequences) -> dict[int, float]:
    """{block: mean weight} over ``sequences`` (``choice_stats``' first half)."""
    return {i: weight for i, (weight, _) in choice_stats(model, sequences).items()}


def own_key_weight(model, spec: RecallSpec, n: int, seed: str = PROBE_SEED) -> dict[int, float]:
    """{block index: mean lookback weight of a value token on its own key} over the first segment of n samples."""
    tokenizer = build_tokenizer(spec)
    rng = random.Random(seed)

    def sequences():
        for _ in range(n):
            sample = make_sample(spec, 1, rng)
            words = sample.words[: spec.segment_length]
            targets = [(pos, max(j for j in range(pos) if words[j].startswith("k")))  # a value and its own key
                       for pos, word in enumerate(words) if word.startswith("v")]
            yield encode(sample, tokenizer)[0][: spec.segment_length], targets

    return mean_weight(model, sequences())


def fact_tokens(prompt: str, facts: list[str], tokenizer) -> tuple[list[int], list[tuple[int, int]]]:
    """(ids of ``prompt``, [(room token, person token)] for each fact found in it in order): the last token of the
    room word and the last token of the person's name (the state that has read the whole name)."""
    encoded = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    spans = encoded["offset_mapping"]

    def token_at(char_end: int) -> int:  # the token that holds the character before char_end
        return next(t for t, (start, end) in enumerate(spans) if start < char_end <= end)

    pairs = []
    for fact, found in zip(facts, fact_spans(prompt, facts)):
        if found is None:
            continue
        body = fact.rstrip(". ")
        person_end, room_end = found[0] + len(body.split()[0]), found[0] + len(body)
        if room_end <= spans[-1][1]:
            pairs.append((token_at(room_end), token_at(person_end)))
    return encoded["input_ids"], pairs


def room_person_stats(model, tokenizer, n: int, seed: int = BABILONG_PROBE_SEED):
    """``choice_stats`` of the rooms of n qa1 samples' stories (0k): {block index: (mean lookback weight of a fact's
    room on its person, (L,) the rooms' mean weight on the token 1 .. L back)}."""
    samples = build_samples("qa1", "0k", n, split="train", seed=seed)
    return choice_stats(model, (fact_tokens(finetune_prompt(s), list(s.facts), tokenizer) for s in samples))


def room_person_weight(model, tokenizer, n: int, seed: int = BABILONG_PROBE_SEED, by_lag: bool = False):
    """{block index: mean lookback weight of a fact's room on its person} (``room_person_stats``); with ``by_lag``,
    {block index: (L,) the rooms' mean weight on the token 1 .. L back} instead."""
    return {i: lags if by_lag else weight for i, (weight, lags) in room_person_stats(model, tokenizer, n, seed).items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint trained with the lookback address (recall, or BABILong with "
                        "--babilong)")
    parser.add_argument("--babilong", action="store_true", help="score a fact's room on its person in qa1 stories "
                        "(the checkpoint's own tokenizer) instead of a value on its key")
    parser.add_argument("--gap", type=int, default=None, help="recall: filler words between key and value, 0 up to "
                        "this (default: the model's data.recall.gap)")
    parser.add_argument("--n", type=int, default=50, help="samples (recall: 4 values each; BABILong: one story each)")
    parser.add_argument("--fresh", action="store_true", help="a freshly initialised model of the same config")
    parser.add_argument("--by-lag", action="store_true", help="with --babilong, also print the rooms' mean weight on "
                        "the token 1 .. L back (where a room is filed when it is not under its person)")
    args = parser.parse_args(argv)
    model = LM2ForCausalLM.from_pretrained(args.model).eval()
    if args.fresh:
        torch.manual_seed(0)
        model = LM2ForCausalLM(model.config).eval()
    if args.by_lag and not args.babilong:
        parser.error("--by-lag is measured on qa1 stories only: add --babilong")
    by_lag = None
    if args.babilong:
        stats = room_person_stats(model, AutoTokenizer.from_pretrained(args.model), args.n)  # one pass for both
        weights, what = {i: weight for i, (weight, _) in stats.items()}, "a room on its person"
        if args.by_lag:
            by_lag = {i: lags for i, (_, lags) in stats.items()}
    else:
        spec = recall_spec_of(args.model)
        if args.gap is not None:
            spec = dataclasses.replace(spec, gap=args.gap)
        weights, what = own_key_weight(model, spec, args.n), "the value's own key"
    for i, weight in weights.items():
        bias = model.model.layers[i].memory.lookback_bias.detach()
        print(f"block {i}: distance preference " + " ".join(f"{float(b):.2f}" for b in bias)
              + f"; weight of {what} {weight:.2f}")
        if by_lag is not None:
            print(f"block {i}: rooms' weight on the token 1 .. {len(by_lag[i])} back "
                  + " ".join(f"{float(w):.2f}" for w in by_lag[i]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
