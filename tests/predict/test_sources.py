"""SOURCE expansion: folders recursive and sorted, globs, list files, videos by extension, collisions refused."""
import os

import pytest

from hmkd.predict.sources import IMAGE, VIDEO, expand_sources


def touch(path):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "wb") as handle:
        handle.write(b"x")
    return str(path)


def test_folder_is_recursive_sorted_and_keeps_sub_folders(tmp_path):
    for rel in ("b.png", "a/z.jpg", "a/b/c.PNG", "clip.mp4", "notes.txt", ".b.png.tmp.0a1b2c"):
        touch(tmp_path / "in" / rel)
    inputs = expand_sources([str(tmp_path / "in")])
    assert [i.stem for i in inputs] == ["a/b/c", "a/z", "b", "clip"]
    assert [i.kind for i in inputs] == [IMAGE, IMAGE, IMAGE, VIDEO]
    assert all(os.path.isabs(i.path) for i in inputs)


def test_glob_list_and_file_sources(tmp_path, monkeypatch):
    for rel in ("x/1.png", "x/2.png", "x/deep/3.png", "y/4.jpg"):
        touch(tmp_path / rel)
    monkeypatch.chdir(str(tmp_path))
    assert [i.stem for i in expand_sources(["x/*.png"])] == ["1", "2"]
    assert [i.stem for i in expand_sources(["x/**/*.png"])] == ["1", "2", "deep/3"]
    listing = tmp_path / "x" / "todo.lst"
    listing.write_text("# two of them\n2.png\n\ndeep/3.png\n%s\n" % (tmp_path / "y" / "4.jpg"))
    inputs = expand_sources([str(listing), "y/4.jpg"])   # 4.jpg given twice: read once
    assert [i.stem for i in inputs] == ["2", "deep/3", "4"]
    assert inputs[2].path == str(tmp_path / "y" / "4.jpg")


def test_colliding_names_and_missing_sources_are_refused(tmp_path):
    touch(tmp_path / "p" / "a.png")
    touch(tmp_path / "q" / "a.jpg")
    with pytest.raises(ValueError, match="would both be written as a"):
        expand_sources([str(tmp_path / "p" / "a.png"), str(tmp_path / "q" / "a.jpg")])
    with pytest.raises(FileNotFoundError, match="missing.png does not exist"):
        expand_sources([str(tmp_path / "missing.png")])
    with pytest.raises(ValueError, match="matches no files"):
        expand_sources([str(tmp_path / "*.bmp")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no image or video files"):
        expand_sources([str(tmp_path / "empty")])
    listing = tmp_path / "l.txt"
    listing.write_text("gone.png\n")
    with pytest.raises(FileNotFoundError, match="list %s line 1 names %s, which does not exist" % (
            listing, tmp_path / "gone.png")):
        expand_sources([str(listing)])
