"""Output folders that commands write into: checked before any work starts, and held by one process at a time.

``hold(folder, command)`` takes an exclusive ``flock`` on ``<folder>/.lm2.lock`` for as long as the command runs,
and writes the holder (command, pid, host) into it, so that a second process is refused with one line naming
the first. The kernel releases the lock when its process dies, even by ``kill -9``: a lock file left behind by a
dead run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

LOCK_FILE = ".lm2.lock"


def check_writable_dir(folder: str | os.PathLike, what: str) -> Path:
    """Refuse (ValueError naming ``what`` and the path) a folder that cannot be created or written into."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{what} {folder}: {parent} is a file, not a folder; choose another path")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"{what} {folder}: {parent} is not writable; choose another path")
            break
    return folder


@contextlib.contextmanager
def hold(folder: str | os.PathLike, command: str, what: str = "--out"):
    """Create ``folder`` if needed and hold its lock while the body runs; ValueError if another process holds it."""
    import fcntl  # platform: POSIX only, and lm2 --help imports this module

    folder = check_writable_dir(folder, what)
    created = not folder.exists()
    path = folder / LOCK_FILE
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ValueError(f"{what} {folder} cannot be created or written ({err.strerror}); choose another "
                         "path") from None
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder unlinks the file on release: a lock taken on a file already unlinked protects nothing.
            locked = os.fstat(fd).st_ino == os.stat(path).st_ino
        except (BlockingIOError, FileNotFoundError):
            pass
        if not locked:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise ValueError(f"{what} {folder} is in use by {holder}; wait for it to finish or choose another "
                             f"folder")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{command} (pid {os.getpid()} on {socket.gethostname()})\n".encode(), 0)
        yield folder
    finally:
        if locked:  # still held while unlinking, so no other process can lock this file after we let it go
            path.unlink(missing_ok=True)
            if created and not any(folder.iterdir()):  # a refused command leaves no folder behind
                folder.rmdir()
        os.close(fd)  # releases the lock
