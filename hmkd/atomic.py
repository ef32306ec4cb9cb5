"""Atomic file writes: nothing half-written is ever published.

Usage: atomic_write_text(path, text); atomic_write_bytes(path, data)

The data goes to a temp file in the target's folder (same filesystem, so the rename is atomic), is flushed and
fsynced, replaces the target with os.replace, and the folder is fsynced so the rename survives a crash. A failed
write removes its temp file and leaves the old target untouched.
"""
import os
import tempfile


def atomic_write_bytes(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".%s.tmp." % os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
