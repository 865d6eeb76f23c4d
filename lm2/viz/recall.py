"""The recall diagnostic's results as a figure: accuracy against the number of distractor segments, one line per
model, with chance drawn in."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lm2.viz import save_figure


def plot_recall(summaries: Mapping[str, dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """``summaries``: {label: the summary ``lm2.eval.recall.evaluate_recall`` returns (recall.json)}."""
    import matplotlib  # heavy: matplotlib (0.5 s to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)

    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    chance, ticks = None, set()
    for label, summary in summaries.items():
        points = sorted((int(d), acc) for d, acc in summary["accuracy"].items())
        ax.plot([d for d, _ in points], [a for _, a in points], marker="o", label=label)
        chance = summary.get("chance", chance)
        ticks.update(d for d, _ in points)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", label=f"chance ({chance:.1f}%)")
    # distractor counts grow geometrically (1, 8, 32): a log axis, symmetric around 0 if 0 is among them
    ax.set_xscale("symlog", linthresh=1) if 0 in ticks else ax.set_xscale("log")
    ax.set_xticks(sorted(ticks), labels=[str(t) for t in sorted(ticks)])
    ax.minorticks_off()
    ax.set_xlabel("distractor segments between the pairs and the queries")
    ax.set_ylabel("recall accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title or "associative recall across segments", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
