"""Looking inside the memory (paper section 4.4 and Fig. 6): which tokens the slots read, how that changes with
test-time memory updates, the gates, and how evenly the slots are used.

Every function works on one sequence (batch 1) and returns NumPy arrays or plain dicts, for notebooks; the
``plot_*`` functions draw them, and ``inspect_memory`` + ``write_report`` are what ``lm2 inspect memory`` runs.

Definitions (docs/design.md section 1 gives the memory semantics):

* **Read weights** w (T, N) of one memory block: token i's cross-attention weight on slot j (eq. 1), averaged
  over the memory heads. Each row is a softmax over the slots: in [0, 1], summing to 1.
* **Probe.** The prompt is read against a *fixed* bank in every memory block, with writes switched off (the
  update interval is set beyond the prompt's length, so no update boundary is crossed). Every token then reads
  the same bank, so a heatmap row shows how that token addresses it.
* **Before memory updates**: the probe against the initial banks M0 (what a fresh sequence starts from).
* **After K test-time update steps**: the paper's test-time update is U = 1, "one inference step is a forward
  pass for one token", each step writing every memory block once. From a fresh state, the K steps feed the
  first K tokens of the prompt; when K is larger than the prompt they go on with the model's greedy
  continuation (generation, as in the paper's Fig. 6). M_K is every block's bank after the K-th write, and the
  probe reads the whole prompt against M_K. So both panels show the same tokens against banks that differ only
  by the K writes (K = 0 gives the *before* weights exactly). Because every block's bank is replaced, a token's
  query in block L also reflects what the earlier memory blocks read. The probe is an inspection, not the
  model's causal computation: tokens before the K-th also read what later tokens wrote.
* **Gates** over the prompt: from the same U = 1 pass over the whole prompt. With U = 1 a chunk is a single
  token i, so every slot pools exactly that token (x_bar = x_hat_i, e_bar = E_mem_i) and the gates the write
  applies are per token: g_in = sigmoid(W_in x_hat_i), g_forget = sigmoid(W_forget E_mem_i) (eq. 4-5; slot j's
  update is further scaled by s_j = w_ij) and g_out = sigmoid(W_out E_mem_i) (eq. 2). Their mean and standard
  deviation are over all tokens and channels. They are recomputed by forward hooks from the block's own
  Linear layers; the model itself carries no inspection code.
* **Slot usage evenness**: the entropy of the mean read weight over the slots, p_j = mean_i w_ij, divided by
  log N: 1 when every slot is read equally on average, 0 when a single slot takes all reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lm2.cache import segments
from lm2.data.tokenizers import _byte_for_char
from lm2.generate import decode_one_token, prefill, resolve_segment_length, sample
from lm2.memory import MemoryState
from lm2.viz import save_figure

GATES = ("input", "forget", "output")


# ----------------------------------------------------------------------------- which blocks have memory


def memory_layers(model) -> list[int]:
    """Indices of the decoder blocks that carry memory; ValueError when there are none.

    A model without memory blocks has no read weights and no gates, and test-time updates change nothing in
    it: asking to inspect its memory is an error that says so, never an empty figure.
    """
    blocks = getattr(getattr(model, "model", None), "layers", None)
    if blocks is None or not all(hasattr(block, "memory") for block in blocks):
        raise ValueError(f"{type(model).__name__} is not an LM2 model: there is no memory bank to inspect")
    layers = [i for i, block in enumerate(blocks) if block.memory is not None]
    if not layers:
        raise ValueError("this model has no memory blocks (memory_layers=0): it has no read weights and no gates, "
                         "and test-time memory updates change nothing; inspect an LM2 model with memory")
    return layers


def check_layer(model, layer: int) -> int:
    """``layer`` if it is a memory block, else ValueError naming the blocks that are."""
    layers = memory_layers(model)
    if layer not in layers:
        raise ValueError(f"layer {layer} has no memory: the memory blocks of this model are {layers}")
    return layer


def _prompt(model, input_ids) -> torch.Tensor:
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise ValueError(f"give one non-empty prompt (a list of ids or a (1, T) tensor), got shape {tuple(ids.shape)}")
    return ids.to(next(model.parameters()).device)


# ----------------------------------------------------------------------------- read weights: the probe


@torch.no_grad()
def read_weights(model, input_ids, banks: dict[int, torch.Tensor] | None = None,
                 segment_length: int | None = None) -> dict[int, np.ndarray]:
    """Every memory block's read weights (T, N) for the prompt read against fixed banks, nothing written.

    ``banks`` {layer: (1, N, D)} replaces each block's initial bank (None: the initial banks M0, i.e. the
    weights *before* memory updates). ``segment_length`` feeds a long prompt in pieces (same result).
    """
    layers = memory_layers(model)
    ids = _prompt(model, input_ids)
    cache = model.new_cache(ids.shape[1] + 1)  # the first update boundary lies past the prompt: no write
    if banks is not None:
        for i in layers:
            cache.layers[i].memory = MemoryState(banks[i])
    collected: dict[int, list[torch.Tensor]] = {i: [] for i in layers}
    for _, out in segments(model, ids, resolve_segment_length(model, segment_length), cache,
                           return_memory_weights=True):
        for i in layers:
            collected[i].append(out["memory_weights"][i][0])  # (t, N)
    return {i: torch.cat(w).float().cpu().numpy() for i, w in collected.items()}


@dataclass
class UpdatedBanks:
    """The outcome of K test-time update steps (U = 1) from a fresh state."""

    steps: int
    banks: dict[int, torch.Tensor]  # {layer: (1, N, D)} every memory block's bank after the K-th write
    continuation: list[int] = field(default_factory=list)  # the greedy tokens fed after the prompt, if K > T
    gates: dict[int, dict[str, dict[str, float]]] | None = None  # see gate_statistics


@torch.no_grad()
def update_at_test_time(model, input_ids, steps: int, segment_length: int | None = None,
                        gates: bool = False) -> UpdatedBanks:
    """Run K = ``steps`` test-time update steps (U = 1: one forward pass and one write per token) from a fresh
    state: the prompt's first K tokens, then, if K is larger than the prompt, the model's greedy continuation.

    With ``gates=True`` the whole prompt is fed (the banks are still taken after K steps) and the gate
    statistics over it are returned too.
    """
    layers = memory_layers(model)
    ids = _prompt(model, input_ids)
    if steps < 0:
        raise ValueError(f"steps={steps} is invalid: it must be >= 0")
    t = ids.shape[1]
    cache = model.new_cache(1)
    initial = {i: model.model.layers[i].memory.initial_state(1).memory for i in layers}
    recorder = GateRecorder(model) if gates else None
    with recorder if recorder is not None else contextlib.nullcontext():
        logits = None
        if steps:
            cache, logits = prefill(model, ids[:, : min(steps, t)], cache, segment_length)
        # Writes replace the bank tensors, never change them in place: keeping references is a snapshot.
        banks = {i: cache.layers[i].memory.memory for i in layers} if steps else initial
        if gates and steps < t:
            cache, logits = prefill(model, ids[:, steps:], cache, segment_length)
    continuation = []
    if steps > t:
        token = sample(logits)  # greedy
        for _ in range(steps - t):
            continuation.append(int(token))
            token, cache = decode_one_token(model, token, cache)
        banks = {i: cache.layers[i].memory.memory for i in layers}
    return UpdatedBanks(steps, banks, continuation, recorder.statistics() if recorder is not None else None)


def read_weights_before_after(model, input_ids, layer: int, steps: int | None = None,
                              segment_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Block ``layer``'s read weights (T, N) of the prompt before memory updates and after ``steps`` test-time
    update steps (None: as many steps as the prompt has tokens). See the module docstring for the definitions.
    """
    check_layer(model, layer)
    steps = _prompt(model, input_ids).shape[1] if steps is None else steps
    updated = update_at_test_time(model, input_ids, steps, segment_length)
    before = read_weights(model, input_ids, None, segment_length)[layer]
    after = read_weights(model, input_ids, updated.banks, segment_length)[layer]
    return before, after


# ----------------------------------------------------------------------------- gates


class GateRecorder:
    """Forward hooks that accumulate, for every memory block, the mean and spread of g_in, g_forget and g_out
    over the tokens of the forward passes run inside ``with GateRecorder(model) as rec:``.

    The values are the per-token gates of a U = 1 write (see the module docstring), computed from the block's
    normalised input (the output of ``input_layernorm``) and its read E_mem (the input of ``memory.out_gate``).
    """

    def __init__(self, model):
        self.blocks = {i: model.model.layers[i] for i in memory_layers(model)}
        self._x_hat: dict[int, torch.Tensor] = {}
        # Per layer and gate: [sum, sum of squares, count], in float64 so long prompts do not lose precision.
        self._sums = {i: {g: [0.0, 0.0, 0] for g in GATES} for i in self.blocks}
        self._handles = []

    def __enter__(self) -> "GateRecorder":
        for i, block in self.blocks.items():
            self._handles.append(block.input_layernorm.register_forward_hook(self._keep_input(i)))
            self._handles.append(block.memory.out_gate.register_forward_hook(self._record(i)))
        return self

    def __exit__(self, *exc) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        return False

    def _keep_input(self, i: int):
        def hook(module, inputs, output):
            self._x_hat[i] = output

        return hook

    def _record(self, i: int):
        def hook(module, inputs, output):
            memory = self.blocks[i].memory
            e_mem = inputs[0]  # (B, T, D): out_gate is applied to the read once per forward, never in the write
            values = {"input": torch.sigmoid(memory.in_gate(self._x_hat[i])), "output": torch.sigmoid(output)}
            if hasattr(memory, "forget_gate"):  # the "replace" update has none: its statistics stay nan
                values["forget"] = torch.sigmoid(memory.forget_gate(e_mem))
            for gate, v in values.items():
                v = v.detach().double()
                acc = self._sums[i][gate]
                acc[0] += float(v.sum())
                acc[1] += float((v * v).sum())
                acc[2] += v.numel()

        return hook

    def statistics(self) -> dict[int, dict[str, dict[str, float]]]:
        """{layer: {gate: {"mean": ..., "std": ...}}} for input, forget and output gates."""
        out = {}
        for i, gates in self._sums.items():
            out[i] = {}
            for gate, (total, squares, count) in gates.items():
                mean = total / count if count else float("nan")
                var = max(squares / count - mean * mean, 0.0) if count else float("nan")
                out[i][gate] = {"mean": mean, "std": var ** 0.5}
        return out


def gate_statistics(model, input_ids, segment_length: int | None = None) -> dict[int, dict[str, dict[str, float]]]:
    """Per memory block, the mean and standard deviation of the input, forget and output gates over the prompt,
    fed with the test-time update (U = 1). {layer: {"input" | "forget" | "output": {"mean", "std"}}}."""
    return update_at_test_time(model, input_ids, 0, segment_length, gates=True).gates


def gate_array(stats: dict[int, dict[str, dict[str, float]]]) -> tuple[list[int], np.ndarray]:
    """The statistics as (layers, array (L, 3, 2)): gates in the order of ``GATES``, then (mean, std)."""
    layers = sorted(stats)
    return layers, np.array([[[stats[i][g]["mean"], stats[i][g]["std"]] for g in GATES] for i in layers])


# ----------------------------------------------------------------------------- summaries of read weights


def slot_top_tokens(weights: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Per slot, the k tokens that read it most: token indices (N, k) and their weights (N, k), strongest
    first."""
    k = min(k, weights.shape[0])
    order = np.argsort(-weights, axis=0, kind="stable")[:k].T  # (N, k)
    return order, np.take_along_axis(weights.T, order, axis=1)


def most_attended_tokens(weights: np.ndarray, count: int = 10) -> np.ndarray:
    """The ``count`` tokens whose strongest read is strongest (ranked by max over slots of w_ij), in prompt
    order: a token that puts most of its weight on one slot is one that slot singles out."""
    count = min(count, weights.shape[0])
    return np.sort(np.argsort(-weights.max(axis=1), kind="stable")[:count])


def slot_usage_entropy(weights: np.ndarray) -> float:
    """Entropy of the mean read weight over the slots, divided by log N: 1 = all slots used evenly."""
    n = weights.shape[1]
    if n == 1:
        return 1.0
    p = np.asarray(weights, dtype=np.float64).mean(axis=0)
    p = p / p.sum()
    nonzero = p[p > 0]
    return float(min(1.0, -(nonzero * np.log(nonzero)).sum() / np.log(n)))  # min: rounding can pass 1


def token_labels(tokenizer, ids) -> list[str]:
    """A short readable label per token id: its own decoded text, whitespace and control characters escaped.

    A byte-level BPE token can hold part of a multi-byte UTF-8 character; decoded alone it is U+FFFD, which a
    figure shows as a box. Such a token is labelled by its bytes instead (``\\xe2\\x80``)."""
    labels = []
    for token in torch.as_tensor(ids).flatten().tolist():
        text = tokenizer.decode([token])
        if "\ufffd" in text:
            text = _token_bytes(tokenizer, token)
        text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
        labels.append(text if text.strip() else repr(text))
    return labels


def _token_bytes(tokenizer, token: int) -> str:
    """The token's text with the bytes that are not whole UTF-8 characters written as ``\\xNN``."""
    piece = tokenizer.convert_ids_to_tokens(token) or ""
    byte = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)  # SentencePiece's byte fallback
    if byte:
        return f"\\x{byte.group(1).lower()}"
    table = _byte_for_char()
    if piece and all(c in table for c in piece):  # byte-level BPE (GPT-2 style): one character per byte
        return bytes(table[c] for c in piece).decode("utf-8", errors="backslashreplace")
    return piece or "\ufffd"


# ----------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib  # heavy: matplotlib (0.5 s to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)

    return plt


LABEL_POINTS = 7  # font size of the token labels
LABEL_CHARS = 16  # longer token texts are cut, so every label fits beside its panel


def spread(positions, gap: float, low: float, high: float) -> np.ndarray:
    """Label positions as close to ``positions`` (ascending) as they can be while at least ``gap`` apart and in
    [low, high]; the gap shrinks when that many labels do not fit."""
    out = np.asarray(positions, dtype=float).copy()
    if len(out) > 1:
        gap = min(gap, (high - low) / (len(out) - 1))
    for i in range(len(out)):  # push down (towards high) past the previous label, then back up inside the range
        out[i] = max(out[i], low if i == 0 else out[i - 1] + gap)
    for i in reversed(range(len(out))):
        out[i] = min(out[i], high if i == len(out) - 1 else out[i + 1] - gap)
    return out


def _label_rows(ax, rows: np.ndarray, labels: list[str], t: int, dpi: int) -> None:
    """Name ``rows`` of a (t rows) heatmap left of ``ax``: the labels stacked without overlapping, each joined
    to its row by a thin line (adjacent rows would otherwise print their labels over each other)."""
    ax.set_yticks(rows, labels=[""] * len(rows))
    height_px = ax.get_window_extent().height
    gap = 1.3 * LABEL_POINTS * dpi / 72 * t / height_px  # one text line, in rows
    places = spread(rows, gap, -0.5 + gap / 2, t - 0.5 - gap / 2)
    x_text = -18 / ax.get_window_extent().width  # 18 pixels left of the panel
    for row, place, label in zip(rows, places, labels):
        ax.annotate(label, xy=(0, row), xycoords=("axes fraction", "data"), xytext=(x_text, place),
                    textcoords=("axes fraction", "data"), ha="right", va="center", fontsize=LABEL_POINTS,
                    annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 1, "shrinkB": 0})


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def plot_read_weights(before: np.ndarray, after: np.ndarray, path: str | os.PathLike, tokens: list[str] | None = None,
                      layer: int | None = None, steps: int | None = None, label_count: int = 10,
                      figsize: tuple[float, float] = (12.0, 6.0), dpi: int = 100) -> Path:
    """Save ``read_weights_figure``: the PNG is exactly ``figsize * dpi`` pixels (no tight bounding box)."""
    return _save(read_weights_figure(before, after, tokens, layer, steps, label_count, figsize, dpi), path, dpi)


def read_weights_figure(before: np.ndarray, after: np.ndarray, tokens: list[str] | None = None,
                        layer: int | None = None, steps: int | None = None, label_count: int = 10,
                        figsize: tuple[float, float] = (12.0, 6.0), dpi: int = 100):
    """The token x slot heatmaps before and after the updates side by side, on one colour scale (from the
    smallest to the largest weight of the two), with the ``label_count`` most attended tokens of each panel
    named beside it, the names never over each other."""
    plt = _pyplot()
    t, n = before.shape
    tokens = tokens if tokens is not None else [str(i) for i in range(t)]
    # One colour scale for both panels, spanning the data: read weights are often close to uniform (1 / N), and
    # a scale from 0 would hide all their structure.
    vmin, vmax = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    fig, axes = plt.subplots(1, 2, figsize=figsize, dpi=dpi, sharex=True)
    # Room for the labels left of each panel: LABEL_CHARS + " (index)" characters, a leader and the axis title.
    label_px = (LABEL_CHARS + 8) * 0.62 * LABEL_POINTS * dpi / 72 + 22
    width_px = figsize[0] * dpi
    panel_px = ((0.9 - 0.06) * width_px - 2 * label_px) / 2 - 20
    fig.subplots_adjust(left=(label_px + 20) / width_px, right=0.9, wspace=(label_px + 10) / panel_px)
    after_title = "after test-time updates" if steps is None else f"after {steps} test-time update steps (U = 1)"
    panels = ((axes[0], before, "before memory updates (initial bank)"), (axes[1], after, after_title))
    images = [ax.imshow(weights, aspect="auto", interpolation="nearest", cmap="viridis", vmin=vmin, vmax=vmax)
              for ax, weights, _ in panels]
    fig.colorbar(images[-1], ax=list(axes), label="read weight", fraction=0.03)  # moves the panels: before labels
    for ax, weights, title in panels:
        rows = most_attended_tokens(weights, label_count)
        _label_rows(ax, rows, [f"{_short(tokens[r])} ({r})" for r in rows], t, dpi)
        ax.set_xlabel("memory slot")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("prompt token (most attended named)", labelpad=(label_px - 18) * 72 / dpi)  # points
    suptitle = "memory read weights" + (f", block {layer}" if layer is not None else "")
    fig.suptitle(f"{suptitle}: {t} tokens x {n} slots", fontsize=11)
    return fig


def plot_gate_statistics(stats: dict[int, dict[str, dict[str, float]]], path: str | os.PathLike,
                         figsize: tuple[float, float] = (8.0, 4.0), dpi: int = 100) -> Path:
    """Save a bar chart: per memory block, the mean of the input, forget and output gates with +-1 std."""
    plt = _pyplot()
    layers, values = gate_array(stats)  # (L, 3, 2)
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    x = np.arange(len(layers))
    width = 0.8 / len(GATES)
    for g, gate in enumerate(GATES):
        ax.bar(x + (g - 1) * width, values[:, g, 0], width, yerr=values[:, g, 1], capsize=2, label=f"{gate} gate")
    ax.set_xticks(x, labels=[str(i) for i in layers])
    ax.set_xlabel("memory block")
    ax.set_ylabel("gate value (mean +- std over tokens)")
    ax.set_ylim(0.0, 1.05)
    ax.legend(fontsize=8, ncols=3, loc="upper center")
    ax.set_title("memory gates over the prompt (test-time update, U = 1)", fontsize=10)
    fig.subplots_adjust(bottom=0.15)
    return _save(fig, path, dpi)


_save = save_figure


# ----------------------------------------------------------------------------- the whole inspection


@dataclass
class MemoryInspection:
    """Everything ``lm2 inspect memory`` reports for one prompt and one memory block."""

    layer: int
    steps: int
    token_ids: list[int]
    tokens: list[str]
    before: np.ndarray  # (T, N) read weights of block ``layer`` against the initial bank
    after: np.ndarray  # (T, N) the same after ``steps`` test-time update steps
    entropy: dict[int, dict[str, float]]  # {layer: {"before", "after"}} slot usage evenness, every memory block
    gates: dict[int, dict[str, dict[str, float]]]
    continuation: list[int]  # greedy tokens fed after the prompt when steps > T


@torch.no_grad()
def inspect_memory(model, input_ids, layer: int, steps: int | None = None, tokens: list[str] | None = None,
                   segment_length: int | None = None) -> MemoryInspection:
    """Read weights before/after ``steps`` test-time updates (None: one per prompt token), slot usage entropy
    of every memory block, and gate statistics over the prompt, with one U = 1 pass and two probes."""
    check_layer(model, layer)
    ids = _prompt(model, input_ids)
    steps = ids.shape[1] if steps is None else steps
    updated = update_at_test_time(model, ids, steps, segment_length, gates=True)
    before = read_weights(model, ids, None, segment_length)
    after = read_weights(model, ids, updated.banks, segment_length)
    entropy = {i: {"before": slot_usage_entropy(before[i]), "after": slot_usage_entropy(after[i])} for i in before}
    token_ids = ids[0].tolist()
    return MemoryInspection(layer, steps, token_ids, tokens or [str(t) for t in token_ids], before[layer],
                            after[layer], entropy, updated.gates, updated.continuation)


def _token_entries(tokens: list[str], indices, weights) -> list[dict[str, Any]]:
    return [{"index": int(i), "token": tokens[int(i)], "weight": round(float(w), 6)} for i, w in zip(indices, weights)]


def report(inspection: MemoryInspection, top_k: int = 5, label_count: int = 10) -> dict[str, Any]:
    """The inspection as a JSON-ready dict (the read weights themselves go to an .npz file)."""
    ins = inspection
    out: dict[str, Any] = {
        "layer": ins.layer,
        "steps": ins.steps,
        "prompt_tokens": len(ins.token_ids),
        "slots": int(ins.before.shape[1]),
        "definition": "before: the prompt read against the initial banks, no writes; after: the prompt read "
                      "against the banks left by `steps` test-time update steps (U = 1, one write per token) over "
                      "the prompt's first tokens, then the greedy continuation (see lm2/viz/memory.py)",
        "continuation_ids": ins.continuation,
        "slot_usage_entropy": {str(i): v for i, v in ins.entropy.items()},
        "gates": {str(i): v for i, v in ins.gates.items()},
    }
    for name, weights in (("before", ins.before), ("after", ins.after)):
        rows = most_attended_tokens(weights, label_count)
        out[f"most_attended_tokens_{name}"] = _token_entries(ins.tokens, rows, weights[rows].max(axis=1))
        out[f"slot_usage_{name}"] = [round(float(p), 6) for p in weights.mean(axis=0)]
        idx, val = slot_top_tokens(weights, top_k)
        out[f"slot_top_tokens_{name}"] = [_token_entries(ins.tokens, idx[j], val[j]) for j in range(len(idx))]
    out["max_abs_change"] = float(np.abs(ins.after - ins.before).max())
    return out


def format_report(data: dict[str, Any], max_slots: int = 16) -> str:
    """A short text version of ``report``: entropies, gates, and the top tokens of the most used slots."""
    lines = [f"memory block {data['layer']}: {data['prompt_tokens']} prompt tokens x {data['slots']} slots, "
             f"after = {data['steps']} test-time update steps (U = 1); largest change of a read weight "
             f"{data['max_abs_change']:.4f}",
             "", "slot usage evenness (normalised entropy of the mean read weight; 1 = even)",
             f"{'block':>5} {'before':>8} {'after':>8}"]
    for layer, e in data["slot_usage_entropy"].items():
        lines.append(f"{layer:>5} {e['before']:8.4f} {e['after']:8.4f}")
    lines += ["", "gates over the prompt (mean +- std)", f"{'block':>5} " + "".join(f"{g:>17}" for g in GATES)]
    for layer, gates in data["gates"].items():
        lines.append(f"{layer:>5} " + "".join(f"{gates[g]['mean']:9.3f} +-{gates[g]['std']:6.3f}" for g in GATES))
    for name in ("before", "after"):
        slots, usage = data[f"slot_top_tokens_{name}"], data[f"slot_usage_{name}"]
        shown = sorted(range(len(slots)), key=lambda j: -usage[j])[:max_slots]
        lines += ["", f"top tokens per slot, {name} updates (the {len(shown)} most used slots; usage = mean read "
                      "weight)"]
        for j in shown:
            lines.append(f"  slot {j:4d} (usage {usage[j]:.3f}): " + ", ".join(
                f"{e['token']!r}@{e['index']} ({e['weight']:.3f})" for e in slots[j]))
    return "\n".join(lines)


def write_report(inspection: MemoryInspection, out_dir: str | os.PathLike, top_k: int = 5,
                 label_count: int = 10, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the heatmap and gate PNGs, the read weights (.npz), report.json and report.txt into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ins = inspection
    paths = {
        "heatmap": plot_read_weights(ins.before, ins.after, out / f"read_weights_layer{ins.layer}.png", ins.tokens,
                                     ins.layer, ins.steps, label_count),
        "gates": plot_gate_statistics(ins.gates, out / "gates.png"),
    }
    paths["weights"] = out / f"read_weights_layer{ins.layer}.npz"
    np.savez_compressed(paths["weights"], before=ins.before, after=ins.after, token_ids=np.array(ins.token_ids))
    data = {**(extra or {}), **report(ins, top_k, label_count)}
    data["files"] = {k: p.name for k, p in paths.items()}
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["text"] = out / "report.txt"
    paths["text"].write_text(format_report(data) + "\n", encoding="utf-8")
    return paths
