"""Plots: BABILong tables and heatmaps, training curves, memory heatmaps."""

from __future__ import annotations

import os
from pathlib import Path


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write a matplotlib figure (creating the folder), close it, and return the path."""
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
