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
