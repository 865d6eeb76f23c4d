"""Token-level perplexity on held-out text, and the loss by position across long documents.

Each document is tokenized on its own and cut into windows of ``seq_len`` tokens (a shorter last piece is kept);
every token of a window but the first is predicted from all the tokens before it in its window. A streaming model
(LM2, vanilla, RMT) reads a window ``segment_length`` tokens at a time with its state carried, so ``seq_len``
can be far beyond any attention window: that is where the loss by position shows whether the model uses the
distant past (a memory model should keep improving with position, a windowed model should flatten out). A
non-streaming model reads a window in one call and ``seq_len`` must fit its ``max_position_embeddings``.

Perplexity is exp(mean negative log-likelihood) over all predicted tokens. The loss by position averages the
negative log-likelihood of the tokens at each position of their window, in bins of ``bin_size`` positions.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lm2.cache import segments
from lm2.data.corpora import iter_documents
from lm2.eval.common import LoadedModel, write_json
from lm2.model_facts import check_fits, is_streaming
from lm2.viz import save_figure


def resolve_source(data: str) -> str:
    """``books`` means the held-out (test) books; anything else is a source for ``iter_documents``."""
    return "books:test" if data == "books" else data


def token_windows(documents: Iterable[str], tokenizer: Any, seq_len: int,
                  max_tokens: int | None) -> Iterator[list[int]]:
    """Windows of at most ``seq_len`` tokens, document by document, until ``max_tokens`` tokens in all."""
    total = 0
    for text in documents:
        ids = list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        for start in range(0, len(ids), seq_len):
            window = ids[start : start + seq_len]
            if max_tokens is not None:
                window = window[: max_tokens - total]
            if len(window) >= 2:  # a single token predicts nothing
                total += len(window)
                yield window
            if max_tokens is not None and total >= max_tokens:
                return


@torch.no_grad()
def window_nll(model, ids: torch.Tensor, segment_length: int = 512) -> torch.Tensor:
    """Negative log-likelihood (B, T - 1) of tokens 1..T-1 of ``ids`` (B, T), each given all tokens before it.

    A streaming model is fed ``segment_length`` tokens at a time with its state; the last logits of a segment
    predict the first token of the next one."""
    if not is_streaming(model):
        logits = model(ids).logits.float()  # (B, T, V)
        return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
    previous, losses = None, []
    for start, out in segments(model, ids, segment_length, logits_to_keep=0):
        piece, logits = ids[:, start : start + segment_length], out.logits.float()  # (B, t, V)
        if previous is not None:
            logits = torch.cat([previous, logits], dim=1)
            piece = torch.cat([ids[:, start - 1 : start], piece], dim=1)
        losses.append(F.cross_entropy(logits[:, :-1].transpose(1, 2), piece[:, 1:], reduction="none"))
        previous = logits[:, -1:]
    return torch.cat(losses, dim=1)


def evaluate_perplexity(loaded: LoadedModel, data: str | Iterable[str] = "books", seq_len: int = 4096,
                        max_tokens: int | None = 65536, segment_length: int = 512, bin_size: int | None = None,
                        batch_size: int = 1, out_dir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Perplexity and loss by position of a loaded model on ``data`` (a source for ``iter_documents``,
    "books" for the held-out books, or an iterable of texts). Written to ``out_dir`` as ``perplexity.json``
    and ``loss_by_position.png``."""
    for name, value, least in (("--seq-len", seq_len, 2), ("--segment-length", segment_length, 1),
                               ("--batch-size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} {value!r} is invalid: it must be an integer of at least {least}")
    if max_tokens is not None and max_tokens < 2:
        raise ValueError(f"--max-tokens {max_tokens} is invalid: it must be at least 2")
    check_fits(loaded.model, seq_len, f"--seq-len {seq_len}")
    bin_size = bin_size or max(1, seq_len // 64)
    device = next(loaded.model.parameters()).device
    documents = iter_documents(resolve_source(data)) if isinstance(data, (str, os.PathLike)) else iter(data)

    n_bins = math.ceil((seq_len - 1) / bin_size)
    bin_sum, bin_count = torch.zeros(n_bins, dtype=torch.float64), torch.zeros(n_bins, dtype=torch.float64)
    total_nll, total_tokens, windows = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(total=max_tokens, unit="tok", disable=not progress, desc="perplexity", dynamic_ncols=True)
    pending: list[list[int]] = []

    def flush(group: list[list[int]]) -> None:
        nonlocal total_nll, total_tokens, windows
        ids = torch.tensor(group, device=device)  # windows of one length: no padding
        nll = window_nll(loaded.model, ids, segment_length).double().cpu()  # (B, T - 1)
        total_nll += float(nll.sum())
        total_tokens += nll.numel()
        windows += len(group)
        positions = torch.arange(1, ids.shape[1])  # the position (in its window) of each predicted token
        bins = (positions - 1) // bin_size
        bin_sum.index_add_(0, bins, nll.sum(0))
        bin_count.index_add_(0, bins, torch.full((len(positions),), float(len(group)), dtype=torch.float64))
        bar.update(ids.numel())

    for window in token_windows(documents, loaded.tokenizer, seq_len, max_tokens):
        if pending and len(window) != len(pending[0]):
            flush(pending)
            pending = []
        pending.append(window)
        if len(pending) == batch_size:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    bar.close()
    if total_tokens == 0:
        raise ValueError(f"no text to evaluate in {data!r}")
    seconds = time.perf_counter() - start
    used = bin_count > 0
    result = {
        "model": str(loaded.path), "model_kind": loaded.kind, "data": str(data) if isinstance(data, (str, os.PathLike))
        else "<texts>", "seq_len": seq_len, "segment_length": segment_length, "max_tokens": max_tokens,
        "windows": windows, "tokens": total_tokens, "loss": total_nll / total_tokens,
        "perplexity": math.exp(total_nll / total_tokens), "seconds": round(seconds, 2),
        "device": str(device),
        "loss_by_position": {
            "bin_size": bin_size,
            "start": [int(i * bin_size + 1) for i in range(n_bins) if used[i]],
            "loss": [float(bin_sum[i] / bin_count[i]) for i in range(n_bins) if used[i]],
            "tokens": [int(bin_count[i]) for i in range(n_bins) if used[i]],
        },
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        write_json(out_dir / "perplexity.json", result)
        plot_loss_by_position(result, out_dir / "loss_by_position.png", title=f"{loaded.name} on {result['data']}")
    return result


def plot_loss_by_position(result: dict, path: str | os.PathLike, title: str = "") -> Path:
    """Mean loss of the tokens at each position of their window (binned), with the overall loss dashed."""
    import matplotlib  # heavy: matplotlib (0.5 s to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)

    curve = result["loss_by_position"]
    centres = [s + (curve["bin_size"] - 1) / 2 for s in curve["start"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(centres, curve["loss"], marker="." if len(centres) < 80 else None)
    ax.axhline(result["loss"], linestyle="--", color="grey", linewidth=1,
               label=f"overall: loss {result['loss']:.3f}, ppl {result['perplexity']:.2f}")
    ax.set_xlabel(f"position in the window (bins of {curve['bin_size']} tokens)")
    ax.set_ylabel("loss (nats / token)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def format_result(result: dict, points: int = 8) -> str:
    """A short text report: perplexity, tokens, and the loss at a few positions."""
    curve = result["loss_by_position"]
    lines = [f"perplexity {result['perplexity']:.3f} (loss {result['loss']:.4f} nats/token) over "
             f"{result['tokens']} predicted tokens in {result['windows']} windows of up to {result['seq_len']}"]
    if curve["start"]:
        step = max(1, len(curve["start"]) // points)
        picks = list(range(0, len(curve["start"]), step))
        if picks[-1] != len(curve["start"]) - 1:
            picks.append(len(curve["start"]) - 1)
        lines.append("loss by position: " + "  ".join(f"{curve['start'][i]}: {curve['loss'][i]:.3f}" for i in picks))
    return "\n".join(lines)
