"""A real small filesystem for full-disk tests: a tmpfs mounted by the test (root only), unmounted afterwards.

Usage (a fixture):
    @pytest.fixture()
    def tmpfs(tmp_path):
        with tmpfs_mounts(tmp_path) as mount:
            yield mount
    folder = tmpfs(size_bytes); remount(folder, bigger); fill(folder)      # in the test

Without root or where mount fails the tests skip with the reason, unless CI or HMKD_REQUIRE_MOUNT is set: there a
skipped full-disk test would hide that it never ran, so it fails.
"""
import contextlib
import errno
import os
import subprocess

import pytest

PAGE = 4096  # tmpfs allocates whole pages


def _cannot(reason: str) -> None:
    if os.environ.get("CI") or os.environ.get("HMKD_REQUIRE_MOUNT"):
        pytest.fail("%s (CI or HMKD_REQUIRE_MOUNT is set, so full-disk tests must run)" % reason)
    pytest.skip(reason)


def pages(size: int) -> int:
    return -(-size // PAGE)


@contextlib.contextmanager
def tmpfs_mounts(tmp_path):
    """Yields mount(size_bytes) -> a fresh tmpfs folder under ``tmp_path``; all are unmounted on the way out."""
    mounted = []

    def mount(size: int) -> str:
        if os.geteuid() != 0:
            _cannot("mounting a tmpfs needs root")
        target = str(tmp_path / ("tmpfs%d" % len(mounted)))
        os.makedirs(target)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", target],
                                capture_output=True, text=True)
        if result.returncode != 0:
            _cannot("mount -t tmpfs failed: %s" % (result.stderr.strip() or result.returncode))
        mounted.append(target)
        return target

    try:
        yield mount
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", target], check=True)


def remount(target: str, size: int) -> None:
    subprocess.run(["mount", "-o", "remount,size=%d" % size, target], check=True)


def fill(target: str) -> str:
    """Write a filler file until the filesystem is full (0 bytes free); returns its path."""
    path = os.path.join(target, "filler")
    chunk = b"\0" * PAGE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, chunk)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    assert os.statvfs(target).f_bavail == 0
    return path
