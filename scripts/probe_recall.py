"""Does the state a memory block writes from carry the key of each value? A linear probe on the diagnostic.

For a model trained on the recall diagnostic (configs/recall-tiny.yaml), collect the memory block's input x_hat
at every value token of the first segment (where the pairs are stated), fit a least-squares linear map to one-hot
key and value labels on 80% of them, and print the held-out accuracy of each. A value token whose state does not
carry its key cannot be bound to it by any write that pools that state (RESULTS.md 1a).

    python scripts/probe_recall.py runs/recall-tiny/ckpt-001200 [--layer 1] [--n 2000] [--seed 12345]

The samples come from their own seed (not the test seed).
"""

from __future__ import annotations

import argparse

import torch


def collect(loaded, spec, layer: int, n: int, seed: int):
    """x_hat of block ``layer``'s memory at each value token of the first segment, with key and value indices."""
    from lm2.data.recall import encode, make_samples
    from lm2.eval.recall import answer_logits

    captured = []

    def hook(module, args):  # LM2Memory.forward(x_hat, state, start, ...): keep the first segment's x_hat
        if args[2] == 0:
            captured.append(args[0].detach())

    handle = loaded.model.model.layers[layer].memory.register_forward_pre_hook(hook)
    samples = make_samples(spec, 1, n, seed=seed)
    states, keys, values = [], [], []
    try:
        for i in range(0, n, 100):
            batch = samples[i : i + 100]
            captured.clear()
            answer_logits(loaded.model, torch.tensor([encode(s, loaded.tokenizer)[0] for s in batch]),
                          spec.segment_length)
            for row, sample in enumerate(batch):
                for p, (key, value) in enumerate(sample.pairs):
                    states.append(captured[0][row, 2 * p + 1])  # the value follows its key
                    keys.append(int(key[1:]))
                    values.append(int(value[1:]))
    finally:
        handle.remove()
    return torch.stack(states), torch.tensor(keys), torch.tensor(values)


def probe_accuracy(x: torch.Tensor, labels: torch.Tensor, classes: int, train_fraction: float = 0.8) -> float:
    """Held-out accuracy of a least-squares linear classifier (with bias) from x to one-hot labels."""
    split = int(train_fraction * len(x))
    features = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    targets = torch.nn.functional.one_hot(labels, classes).float()
    weights = torch.linalg.lstsq(features[:split], targets[:split]).solution
    return (features[split:] @ weights).argmax(1).eq(labels[split:]).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a checkpoint trained with data.task=recall")
    parser.add_argument("--layer", type=int, default=None, help="memory block to probe (default: the last one)")
    parser.add_argument("--n", type=int, default=2000, help="samples (4 value tokens each)")
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    from lm2.eval.common import load_model
    from lm2.eval.recall import recall_spec_of

    loaded = load_model(args.model)
    spec = recall_spec_of(loaded.path)
    layers = [i for i, block in enumerate(loaded.model.model.layers) if block.memory is not None]
    if not layers:
        raise SystemExit(f"{args.model} has no memory block to probe")
    layer = layers[-1] if args.layer is None else args.layer
    if layer not in layers:
        raise SystemExit(f"--layer {layer} is invalid: the memory blocks are {layers}")
    with torch.no_grad():
        x, keys, values = collect(loaded, spec, layer, args.n, args.seed)
    print(f"block {layer} memory input at {len(x)} value tokens: key decodable "
          f"{100 * probe_accuracy(x, keys, spec.num_keys):.1f}% (chance {100 / spec.num_keys:.1f}%), value decodable "
          f"{100 * probe_accuracy(x, values, spec.num_values):.1f}% (chance {100 / spec.num_values:.1f}%)")


if __name__ == "__main__":
    main()
