"""Training curves from a run's metrics.jsonl: the loss (train and validation) and BABILong accuracy by step."""

from __future__ import annotations

import json
from pathlib import Path

from lm2.viz import save_figure


def read_metrics(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def results_table(records: list[dict]) -> str:
    """The last evaluation as a table: one row per task, one column per length, plus the validation loss."""
    evals = [r for r in records if r.get("kind") == "eval"]
    if not evals:
        return "(no evaluation recorded)"
    last = evals[-1]
    cells = {}
    for key, value in last.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "acc":
            cells.setdefault(parts[1], {})[parts[2]] = value
    lines = [f"step {last['step']}: validation loss {last['val_loss']:.4f}"]
    if cells:
        lengths = sorted({length for row in cells.values() for length in row}, key=_length_key)
        lines.append("task   " + "".join(f"{length:>8}" for length in lengths) + "    mean")
        for task, row in cells.items():
            values = [row.get(length) for length in lengths]
            known = [v for v in values if v is not None]
            lines.append(f"{task:<7}" + "".join(f"{'-' if v is None else f'{100 * v:.1f}%':>8}" for v in values)
                         + f"{100 * sum(known) / len(known):>7.1f}%")
    return "\n".join(lines)


def _length_key(length: str) -> float:
    try:
        return float(length.rstrip("kK")) * (1000 if length[-1:] in "kK" else 1)
    except ValueError:
        return float("inf")


def plot_curves(metrics_path: str | Path, out_path: str | Path) -> Path:
    """Two panels: train loss (smoothed) and validation loss against step; accuracy per task/length."""
    import matplotlib  # heavy: matplotlib (0.5 s to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)

    records = read_metrics(metrics_path)
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    acc_keys = sorted({k for r in evals for k in r if k.startswith("acc/") and k != "acc/mean"})
    fig, axes = plt.subplots(1, 2 if acc_keys else 1, figsize=(11 if acc_keys else 6, 4), squeeze=False)
    ax = axes[0, 0]
    if train:
        steps, losses = [r["step"] for r in train], [r["loss"] for r in train]
        ax.plot(steps, losses, alpha=0.3, color="C0", label="train (per step)")
        smooth, k = [], max(1, len(losses) // 50)
        for i in range(len(losses)):
            window = losses[max(0, i - k + 1) : i + 1]
            smooth.append(sum(window) / len(window))
        ax.plot(steps, smooth, color="C0", label=f"train (mean of {k})")
        for r in train[1:]:
            if r.get("stage") != train[train.index(r) - 1].get("stage"):
                ax.axvline(r["step"], color="grey", ls=":", lw=1)
    if evals:
        ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", color="C1", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (answer tokens)" if acc_keys else "loss")
    ax.legend()
    ax.set_title("loss (dotted: curriculum stage changes)" if acc_keys else "loss")
    if acc_keys:
        ax = axes[0, 1]
        for key in acc_keys:
            ax.plot([r["step"] for r in evals if key in r], [100 * r[key] for r in evals if key in r], "o-",
                    label=key[4:])
        ax.set_ylim(0, 100)
        ax.set_xlabel("step")
        ax.set_ylabel("exact-match accuracy (%)")
        ax.set_title("BABILong accuracy (held-out test samples)")
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, out_path, dpi=110)


def plot_lines(series: dict[str, tuple], out_path: str | Path, xlabel: str, ylabel: str,
               hline: tuple[float, str] | None = None, ylim: tuple[float, float] | None = None,
               categories: list[str] | None = None) -> Path:
    """One line per name: ``series[name] = (xs, ys)`` or ``(xs, ys, lows, highs)``, the last two drawn as a
    shaded band (e.g. the range over seeds). ``hline = (y, label)`` adds a dotted reference line (chance).
    ``categories``: the order of labelled x values (e.g. lengths "0k", "1k", ...) on the axis; each series is drawn
    at its own labels' places in it, so a series that lacks some of them does not reorder the axis."""
    import matplotlib  # heavy: matplotlib (0.5 s to import)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # heavy: matplotlib (0.5 s to import)

    crowded = len(series) > 5  # a legend that would hide the lines goes to their right
    fig, ax = plt.subplots(figsize=(9, 4) if crowded else (6, 4))
    place = {label: i for i, label in enumerate(categories or [])}
    for i, (name, values) in enumerate(series.items()):
        xs, ys = values[0], values[1]
        if categories is not None:
            unknown = [x for x in xs if x not in place]
            if unknown:
                raise ValueError(f"plot_lines: series {name!r} has x values {unknown} not in categories {categories}")
            xs = [place[x] for x in xs]
        ax.plot(xs, ys, marker="o", color=f"C{i}", label=name)
        if len(values) == 4:
            ax.fill_between(xs, values[2], values[3], color=f"C{i}", alpha=0.2, linewidth=0)
    if hline is not None:
        ax.axhline(hline[0], color="grey", linestyle=":", label=hline[1])
    if ylim is not None:
        ax.set_ylim(*ylim)
    if categories is not None:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if crowded:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, out_path)
