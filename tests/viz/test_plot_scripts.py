"""scripts/plot_runs.py: runs that differ only in -seed<N> become one line whose final value is their mean."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def fake_run(folder: Path, losses: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"train": {"batch_size": 2}, "data": {"block_size": 8}}))
    lines = [{"kind": "train", "step": 1, "loss": 9.0}]
    lines += [{"kind": "eval", "step": 10 * (i + 1), "val_loss": v} for i, v in enumerate(losses)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_seeds_are_averaged_and_listed(tmp_path):
    fake_run(tmp_path / "mem0-seed0", [5.0, 4.0])
    fake_run(tmp_path / "mem0-seed1", [5.2, 4.3])
    fake_run(tmp_path / "mem4", [5.1, 4.1, 3.9])
    out = tmp_path / "plot.png"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts/plot_runs.py"), "--out", str(out),
         *(str(tmp_path / n) for n in ("mem0-seed0", "mem0-seed1", "mem4"))],
        capture_output=True, text=True, check=True)
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:-1]}
    assert rows["mem0"][1] == "2" and float(rows["mem0"][2]) == pytest.approx(statistics.fmean([4.0, 4.3]), abs=1e-4)
    assert float(rows["mem0"][3]) == pytest.approx(statistics.stdev([4.0, 4.3]), abs=1e-4)
    assert rows["mem4"][1] == "1" and float(rows["mem4"][2]) == 3.9
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labelled_runs_are_named_and_grouped_by_their_label(tmp_path):
    """LABEL=DIR names a line; runs given one label are one line whose final value is their mean, whatever their
    folders are called; a bare folder keeps its name; a folder that is not a run is refused by name."""
    fake_run(tmp_path / "a", [5.0, 4.0])
    fake_run(tmp_path / "b", [5.2, 4.4])
    fake_run(tmp_path / "c-seed3", [5.1, 3.5])
    script = [sys.executable, str(ROOT / "scripts/plot_runs.py"), "--out", str(tmp_path / "plot.png")]
    result = subprocess.run([*script, f"twice={tmp_path / 'a'}", f"twice={tmp_path / 'b'}", str(tmp_path / "c-seed3")],
                            capture_output=True, text=True, check=True)
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:-1]}
    assert set(rows) == {"twice", "c"}
    assert rows["twice"][1] == "2" and float(rows["twice"][2]) == pytest.approx(4.2, abs=1e-4)
    assert rows["c"][1] == "1" and float(rows["c"][2]) == 3.5
    missing = subprocess.run([*script, f"x={tmp_path / 'none'}"], capture_output=True, text=True)
    assert missing.returncode != 0 and "no config.yaml" in missing.stderr and "none" in missing.stderr
    empty = subprocess.run([*script, f"={tmp_path / 'a'}"], capture_output=True, text=True)
    assert empty.returncode != 0 and "LABEL=DIR" in empty.stderr


def fake_eval(folder: Path, accuracy: dict, mean: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"tasks": list(accuracy), "accuracy": accuracy, "mean": mean}))


def png_width(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[16:20], "big")


def test_babilong_comparison_table_and_heatmaps(tmp_path):
    """compare_babilong.py: the Table 1 rows are the runs' means, the columns every length any run has (a run
    stopped early shows "-"), the task rows follow, and the heatmaps come one panel per run."""
    fake_eval(tmp_path / "a", {"qa1": {"0k": 50.0, "4k": 10.0}, "qa2": {"0k": 30.0, "4k": 20.0}},
              {"0k": 40.0, "4k": 15.0})
    fake_eval(tmp_path / "b", {"qa1": {"0k": 45.0, "1k": 25.0}, "qa2": {"0k": 35.0}}, {"0k": 40.0})
    script = [sys.executable, str(ROOT / "scripts/compare_babilong.py")]
    out = subprocess.run([*script, "--out", str(tmp_path / "lines.png"), "--heatmap", str(tmp_path / "two.png"),
                          f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}"], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert "| model | 0k | 1k | 4k |" in lines
    assert "| A | 40.0 | - | 15.0 |" in lines and "| B | 40.0 | - | - |" in lines
    assert "| B | qa1 | 45.0 | 25.0 | - |" in lines and "| B | qa2 | 35.0 | - | - |" in lines
    subprocess.run([*script, "--out", str(tmp_path / "lines1.png"), "--heatmap", str(tmp_path / "one.png"),
                    f"A={tmp_path / 'a'}"], capture_output=True, check=True)
    assert png_width(tmp_path / "two.png") > 1.8 * png_width(tmp_path / "one.png") > 0  # two panels, side by side


def fake_answers(folder: Path, name: str, targets: list[str]) -> None:
    rows = "".join(f"Where is X?,{t},kitchen\n" for t in targets)
    (folder / name).write_text("question,target,output\n" + rows)


def test_best_constant_answer_line(tmp_path):
    """--chance majority: per task the share of its most frequent target over all of the first run's CSVs
    (qa1: bedroom 4 of 7 over two lengths; qa2: hallway 2 of 3), the line at their mean; a folder without
    answers and a bad --chance value are refused."""
    from lm2.eval.babilong import majority_baseline

    fake_eval(tmp_path / "a", {"qa1": {"0k": 50.0}, "qa2": {"0k": 30.0}}, {"0k": 40.0})
    fake_answers(tmp_path / "a", "qa1_0k.csv", ["bedroom", "bedroom", "garden", "office"])
    fake_answers(tmp_path / "a", "qa1_1k.csv", ["bedroom", "bedroom", "garden"])
    fake_answers(tmp_path / "a", "qa2_0k.csv", ["hallway", "kitchen", "hallway"])
    (tmp_path / "a" / "qa2_1k.partial.jsonl").write_text('{"not": "finished"}\n')  # unfinished: not counted
    assert majority_baseline(tmp_path / "a") == pytest.approx({"qa1": 100 * 4 / 7, "qa2": 100 * 2 / 3})
    script = [sys.executable, str(ROOT / "scripts/compare_babilong.py"), "--out", str(tmp_path / "lines.png")]
    out = subprocess.run([*script, "--chance", "majority", f"A={tmp_path / 'a'}"], capture_output=True, text=True,
                         check=True).stdout
    assert f"qa1 57.1, qa2 66.7; mean {(100 * 4 / 7 + 100 * 2 / 3) / 2:.1f}" in out
    with pytest.raises(FileNotFoundError, match="no <task>_<length>.csv"):
        majority_baseline(tmp_path)
    bad = subprocess.run([*script, "--chance", "half", f"A={tmp_path / 'a'}"], capture_output=True, text=True)
    assert bad.returncode != 0 and "--chance takes an accuracy in % or 'majority'" in bad.stderr


def test_compare_recall_prints_each_run_and_writes_a_figure(tmp_path):
    for name, acc in (("a", {"1": 40.0, "8": 44.5}), ("b", {"1": 2.5, "8": 3.0})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "recall.json").write_text(json.dumps({"accuracy": acc, "chance": 3.125}))
    out = tmp_path / "recall.png"
    result = subprocess.run([sys.executable, str(ROOT / "scripts/compare_recall.py"), "--out", str(out),
                             f"LM2={tmp_path / 'a'}", f"vanilla={tmp_path / 'b'}"],
                            capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["LM2:", "1", "segments", "40.0,", "8", "segments", "44.5"]
    assert lines[1].split()[0] == "vanilla:" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run([sys.executable, str(ROOT / "scripts/compare_recall.py"), "--out", str(out),
                              f"x={tmp_path / 'none'}"], capture_output=True, text=True)
    assert missing.returncode == 2 and "recall.json does not exist" in missing.stderr


def test_babilong_comparison_averages_seeds_with_their_range(tmp_path):
    """NAME=DIR1,DIR2: the row is the seeds' mean with their range, at the lengths both seeds have."""
    fake_eval(tmp_path / "s1", {"qa1": {"0k": 60.0, "1k": 40.0, "2k": 30.0}}, {"0k": 60.0, "1k": 40.0, "2k": 30.0})
    fake_eval(tmp_path / "s2", {"qa1": {"0k": 70.0, "1k": 50.0}}, {"0k": 70.0, "1k": 50.0})
    out = subprocess.run([sys.executable, str(ROOT / "scripts/compare_babilong.py"), "--out", str(tmp_path / "l.png"),
                          f"A={tmp_path / 's1'},{tmp_path / 's2'}"], capture_output=True, text=True, check=True)
    assert "| A | 65.0 (60-70) | 45.0 (40-50) |" in out.stdout.splitlines()


def test_paired_comparison_counts_discordant_pairs_and_tests_them(tmp_path):
    """paired_babilong.py: per length and pooled, the accuracies, the pairs where only one model is right and the
    exact sign test on them, computed by hand here (one seed: A right on 8 of 10 where B is right on 2, B never
    right alone: p = 2 / 2**6)."""
    for name, outputs in (("a", ["kitchen"] * 8 + ["garden"] * 2), ("b", ["kitchen"] * 2 + ["garden"] * 8)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"rule": "exact", "tasks": ["qa1"]}))
        (folder / "qa1_1k.csv").write_text("target,output,question\n"
                                           + "".join(f"kitchen,{o},Where is Mary?\n" for o in outputs))
    out = subprocess.run([sys.executable, str(ROOT / "scripts/paired_babilong.py"), "--lengths", "1k",
                          f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}"], capture_output=True, text=True, check=True)
    row = next(line for line in out.stdout.splitlines() if line.startswith("| qa1 1k"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:8] == ["10", "80.0", "20.0", "+60.0", "6", "0", f"{2 / 2**6:.2g}"]
    low, high = (float(x) for x in cells[8].strip("[]").split(","))
    assert 20 <= low <= 60 <= high <= 90


def test_labelled_x_values_keep_the_given_order_when_a_series_lacks_some(tmp_path, monkeypatch):
    """A run evaluated at 0k / 1k / 32k drawn first must not push 2k after 32k on the axis (the lines drawn at the
    categories' places, the ticks labelled in their order)."""
    import matplotlib.axes

    from lm2.viz.curves import plot_lines

    drawn = {}
    original = matplotlib.axes.Axes.plot

    def record(self, xs, ys, *args, **kwargs):
        drawn[kwargs["label"]] = list(xs)
        return original(self, xs, ys, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    lengths = ["0k", "1k", "2k", "32k"]
    out = plot_lines({"a": (["0k", "1k", "32k"], [90, 80, 70]), "b": (["0k", "2k", "32k"], [50, 40, 30])},
                     tmp_path / "lines.png", "length", "accuracy", categories=lengths)
    assert out.is_file()
    assert drawn == {"a": [0, 1, 3], "b": [0, 2, 3]}
    with pytest.raises(ValueError, match="not in categories"):
        plot_lines({"a": (["0k", "64k"], [1, 2])}, tmp_path / "bad.png", "length", "accuracy", categories=lengths)
