"""Atomic file writes: nothing half-written is ever published, and a full disk is one clear error.

Usage: atomic_write_text(path, text); atomic_write_bytes(path, data); append_text(log_path, line)
       append_bytes(event_file, record)
       with atomic_open("run/server.zip") as handle: ...      # streamed: the whole file, or the old one
       except DiskFullError as exc: print(exc)     # path, bytes it was writing, free space there, the fix

The data goes to a temp file in the target's folder (same filesystem, so the rename is atomic), is flushed and
fsynced, replaces the target with os.replace, and the folder is fsynced so the rename survives a crash. A failed
write removes its temp file and leaves the old target untouched. Appends to logs add whole records or nothing.

Every file gets the mode ``open()`` would give it: 0666 less the process umask (0644 at 022, 0664 at 002), and a
folder's default ACL where it has one. mkstemp's 0600 would make a teammate's checkpoints and reports unreadable on
shared storage, and a teacher unreadable to a job running under another uid (pyxis, Apptainer).

A full filesystem (ENOSPC) or a spent quota (EDQUOT) is raised as ``DiskFullError`` from here, so every writer says
the same thing; its ``fix`` may be replaced by a caller that knows more (e.g. where a training run resumes).
"""
import errno
import os
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Optional, Tuple

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def format_bytes(count: int) -> str:
    """Sizes for people: bytes below 10 kB, else MB or GB (powers of 1000, as disks are sold and df -H shows)."""
    if count < 10000:
        return "%d bytes" % count
    if count < 10 ** 9:
        return "%.2f MB" % (count / 1e6)
    return "%.2f GB" % (count / 1e9)


def free_bytes(path: str) -> Optional[int]:
    """Space an unprivileged writer still has on the filesystem holding ``path`` (its folder); None if unknown."""
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


class DiskFullError(OSError):
    """A write found no room (ENOSPC, EDQUOT). An OSError with the usual errno, but its text is one line for the
    user: what was being written, how many bytes, how much is free there and what to do, since ENOSPC alone names
    neither the file nor the fix. ``free`` is measured after the failed write's temp file is gone."""

    def __init__(self, path: str, needed: Optional[int], code: int = errno.ENOSPC,
                 fix: str = "free space there, then run the same command again"):
        super().__init__(code, os.strerror(code), path)
        self.needed = needed
        self.free = free_bytes(path)
        self.fix = fix

    def __str__(self) -> str:
        sizes = ["%s to write" % format_bytes(self.needed)] if self.needed is not None else []
        if self.free is not None:
            sizes.append("%s free there" % format_bytes(self.free))
        return "%s writing %s%s; %s" % (self.strerror[:1].lower() + self.strerror[1:], self.filename,
                                        " (%s)" % ", ".join(sizes) if sizes else "", self.fix)

    def __reduce__(self):  # pickled as its own fields (OSError would replay (errno, strerror, filename))
        return type(self), (self.filename, self.needed, self.errno, self.fix), {"free": self.free}


@contextmanager
def reporting_full_disk(path: str, needed: Optional[int]) -> Iterator[None]:
    """ENOSPC/EDQUOT raised inside becomes DiskFullError for ``path``; other errors pass unchanged."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno not in FULL_DISK_ERRNOS:
            raise
        raise DiskFullError(path, needed, exc.errno) from exc


def _create_temp(folder: str, prefix: str) -> Tuple[int, str]:
    """A new file in ``folder`` (name ``prefix`` + random hex), opened for writing with the mode open() gives:
    0666 through the umask, applied by the kernel, so no process-wide umask has to be read (and re-set) here."""
    for _ in range(100):
        tmp = os.path.join(folder, prefix + os.urandom(6).hex())
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name in %s" % folder, prefix)


@contextmanager
def atomic_open(path: str, needed: Optional[int] = None) -> Iterator[BinaryIO]:
    """A binary file handle whose content replaces ``path`` only when the block ends without an error, for writers
    that stream (a zip of many files) rather than hold the whole file in memory; ``needed`` sizes a full-disk
    error when known."""
    folder = os.path.dirname(os.path.abspath(path))
    with reporting_full_disk(path, needed):
        os.makedirs(folder, exist_ok=True)
        fd, tmp = _create_temp(folder, ".%s.tmp." % os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
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


def atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_open(path, len(data)) as handle:
        handle.write(data)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def append_text(path: str, text: str) -> None:
    """Append ``text`` whole or not at all: a write cut short by a full disk is truncated away again, so a log keeps
    whole lines and the next line after a resume does not run into half of an old one."""
    append_bytes(path, text.encode("utf-8"))


def append_bytes(path: str, data: bytes) -> None:
    """Append ``data`` whole or not at all (see append_text): logs of binary records keep whole records."""
    with reporting_full_disk(path, len(data)):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # as open(path, "a"): the umask decides
        try:
            start = os.fstat(fd).st_size
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)
