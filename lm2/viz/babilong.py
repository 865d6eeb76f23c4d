"""BABILong results as a text table and as a task x length heatmap (the layout of the BABILong paper's figures).

Both take accuracies in percent as ``{task: {length: accuracy}}``; a missing cell is shown empty.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lm2.viz import save_figure

Accuracies = Mapping[str, Mapping[str, float]]


def format_table(accuracy: Accuracies, tasks: Sequence[str], lengths: Sequence[str],
                 extra_rows: Mapping[str, Mapping[str, float]] | None = None,
                 extra_column: tuple[str, Mapping[str, float]] | None = None) -> str:
    """A fixed-width table: one row per task (and per extra row, e.g. the qa1-qa5 mean), one column per length,
    plus an optional extra column (e.g. the aggregate over lengths >= 8k)."""
    rows = [(task, accuracy.get(task, {})) for task in tasks] + list((extra_rows or {}).items())
    columns = list(lengths) + ([extra_column[0]] if extra_column else [])
    width = max(6, *(len(c) + 1 for c in columns))
    label_width = max(6, *(len(name) for name, _ in rows))

    def cell(value) -> str:
        return f"{value:{width}.1f}" if value is not None else " " * (width - 1) + "-"

    lines = [f"{'':<{label_width}}" + "".join(f"{c:>{width}}" for c in columns)]
    for i, (name, values) in enumerate(rows):
        if i == len(tasks) and extra_rows:
            lines.append("-" * (label_width + width * len(columns)))
        line = f"{name:<{label_width}}" + "".join(cell(values.get(length)) for length in lengths)
        if extra_column:
            line += cell(extra_column[1].get(name))
        lines.append(line)
    return "\n".join(lines)


def plot_heatmap(accuracy: Accuracies, tasks: Sequence[str], lengths: Sequence[str], path: str | os.PathLike,
                 title: str = "") -> Path:
    """Save a heatmap of accuracy (rows: tasks, columns: lengths), red (0) to green (100), values written in."""
    return plot_heatmaps({title: accuracy}, tasks, lengths, path)


def plot_heatmaps(panels: Mapping[str, Accuracies], tasks: Sequence[str], lengths: Sequence[str],
                  path: str | os.PathLike) -> Path:
    """Heatmaps side by side, one per model (titled by the mapping's keys), on one colour scale, so that models
    can be compared cell by cell."""
    import matplotlib  # heavy: matplotlib (0.5 s to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)
    width = max(5.5, 1.5 + 0.75 * len(lengths))
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 1.2 + 0.45 * len(tasks)),
                             squeeze=False, layout="constrained")
    for ax, (name, accuracy) in zip(axes[0], panels.items()):
        grid = np.full((len(tasks), len(lengths)), np.nan)
        for i, task in enumerate(tasks):
            for j, length in enumerate(lengths):
                value = accuracy.get(task, {}).get(length)
                if value is not None:
                    grid[i, j] = value
        image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(lengths)), labels=list(lengths))
        ax.set_yticks(range(len(tasks)), labels=list(tasks))
        ax.set_xlabel("context length (GPT-2 tokens)")
        for i in range(len(tasks)):
            for j in range(len(lengths)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=9,
                            color="white" if grid[i, j] < 12 or grid[i, j] > 88 else "black")  # the dark ends
        if name:
            ax.set_title("\n".join(textwrap.wrap(name, 60)), fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), label="accuracy (%)")
    return save_figure(fig, path)
