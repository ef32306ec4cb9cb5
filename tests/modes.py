"""File modes under a umask, for the tests that check what hmkd publishes (importable: pytest's pythonpath has tests/).

Usage:
    @pytest.mark.parametrize("mask", UMASKS)
    def test_x(tmp_path, mask):
        with umask(mask):
            ...                                             # write files (subprocesses inherit the umask)
        assert wrong_modes(tmp_path / "run", mask) == {}    # every file 0666 & ~mask, every folder 0777 & ~mask
"""
import os
import stat
from contextlib import contextmanager

import pytest

# a single user's default (files 0644) and a group-shared project's (0664)
UMASKS = [pytest.param(0o022, id="umask022"), pytest.param(0o002, id="umask002")]


@contextmanager
def umask(mask):
    """The process umask set to ``mask`` inside the block, then restored."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def expected_mode(path, mask):
    """What open() and os.makedirs give under ``mask``: 0666 or 0777, less the mask."""
    return (0o777 if os.path.isdir(path) else 0o666) & ~mask


def wrong_modes(root, mask):
    """{path relative to root: "got, expected" in octal} for ``root``'s files and folders (``root`` included) whose
    permission bits differ from :func:`expected_mode`; empty when every one is right."""
    root = str(root)
    wrong = {}
    paths = [root]
    for folder, dirs, files in os.walk(root):
        paths += [os.path.join(folder, name) for name in dirs + files]
    for path in paths:
        mode = stat.S_IMODE(os.lstat(path).st_mode)
        if not os.path.islink(path) and mode != expected_mode(path, mask):
            wrong[os.path.relpath(path, root)] = "%03o, expected %03o" % (mode, expected_mode(path, mask))
    return wrong

