"""Atomic writes on a real full filesystem (a tmpfs the test mounts): DiskFullError names the file and the sizes,
the old file survives, no temp file is left, and an append is whole or not at all. Every file gets open()'s mode."""
import errno
import os
import pickle

import pytest

from hmkd.atomic import DiskFullError, append_text, atomic_open, atomic_write_bytes, format_bytes
from modes import UMASKS, umask, wrong_modes
from mounts import PAGE, fill, tmpfs_mounts


@pytest.fixture()
def tmpfs(tmp_path):
    with tmpfs_mounts(tmp_path) as mount:
        yield mount


def test_write_to_a_full_disk_raises_disk_full_error_and_keeps_the_old_file(tmpfs):
    folder = tmpfs(64 * PAGE)
    target = os.path.join(folder, "state.bin")
    atomic_write_bytes(target, b"old")
    fill(folder)
    with pytest.raises(DiskFullError) as info:
        atomic_write_bytes(target, b"x" * 250000)
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert str(info.value) == ("no space left on device writing %s (0.25 MB to write, 0 bytes free there); free space "
                               "there, then run the same command again" % target)
    with open(target, "rb") as handle:
        assert handle.read() == b"old"
    assert sorted(os.listdir(folder)) == ["filler", "state.bin"]  # the temp file is gone


def test_a_streamed_write_publishes_whole_files_only(tmpfs):
    folder = tmpfs(64 * PAGE)
    target = os.path.join(folder, "server.zip")
    with atomic_open(target) as handle:
        handle.write(b"old")
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_open(target) as handle:
            handle.write(b"half")
            raise RuntimeError("writer failed")
    fill(folder)
    with pytest.raises(DiskFullError) as info:
        with atomic_open(target) as handle:
            for _ in range(10):
                handle.write(b"x" * 50000)
    assert str(info.value).startswith("no space left on device writing %s (0 bytes free there)" % target)
    with open(target, "rb") as handle:
        assert handle.read() == b"old"
    assert sorted(os.listdir(folder)) == ["filler", "server.zip"]  # the temp files are gone


def test_append_to_a_full_disk_is_cut_back_to_whole_lines(tmpfs):
    folder = tmpfs(64 * PAGE)
    log = os.path.join(folder, "train.log")
    append_text(log, "first\n")
    fill(folder)
    append_text(log, "short\n")  # fits in the file's last page: a full disk does not fail writes that need no room
    with pytest.raises(DiskFullError, match="writing %s \\(3.00 MB to write, " % log):
        append_text(log, "y" * 3000000 + "\n")  # fills the page, then ENOSPC: the partial tail is removed again
    with open(log) as handle:
        assert handle.read() == "first\nshort\n"


def test_quota_error_text_and_pickling(tmp_path):
    error = DiskFullError(str(tmp_path / "model.pth"), 5 * 10 ** 9, errno.EDQUOT, fix="ask for more quota")
    text = str(error)
    assert text.startswith("disk quota exceeded writing %s (5.00 GB to write, " % (tmp_path / "model.pth"))
    assert text.endswith(" free there); ask for more quota")
    copy = pickle.loads(pickle.dumps(error))  # crosses process boundaries (launcher, spawn) unchanged
    assert type(copy) is DiskFullError and str(copy) == text and copy.errno == errno.EDQUOT


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 9999, 514869, 42462407, 3 * 10 ** 9)] == [
        "0 bytes", "9999 bytes", "0.51 MB", "42.46 MB", "3.00 GB"]


@pytest.mark.parametrize("mask", UMASKS)
def test_every_file_gets_the_mode_open_gives_under_the_umask(tmp_path, mask):
    out = tmp_path / "out"
    with umask(mask):
        atomic_write_bytes(str(out / "nested" / "model.pth"), b"weights")  # its folders are made too
        atomic_write_bytes(str(out / "nested" / "model.pth"), b"weights, again")  # a replaced file likewise
        with atomic_open(str(out / "server.zip")) as handle:
            handle.write(b"zip")
        append_text(str(out / "train.log"), "line\n")
        with open(str(out / "by_open.txt"), "w") as handle:  # the reference
            handle.write("text")
    assert wrong_modes(out, mask) == {}
    assert sorted(os.listdir(str(out))) == ["by_open.txt", "nested", "server.zip", "train.log"]  # no temp file left
