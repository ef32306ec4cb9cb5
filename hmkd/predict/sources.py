"""What ``hmkd predict SOURCE...`` reads: image files, folders, globs, list files and videos, as one ordered list.

Usage:
    inputs = expand_sources(["photos/", "clip.mp4", "shots/**/*.jpg", "todo.txt"])
    inputs[0].path, inputs[0].stem, inputs[0].kind         # "/abs/photos/a/b.png", "a/b", "image"

Each SOURCE is, by what it is on disk:
- a folder: every image and video file under it, searched recursively, in sorted path order (other files, e.g. a
  README, are left out); the output name keeps the path inside the folder (``a/b.png`` -> ``a/b``);
- a ``.txt`` or ``.lst`` file: one path per line (blank lines and ``#`` comments skipped), relative paths resolved
  against the list's folder; named as inside that folder when under it, else by file name;
- a file with a video extension (VIDEO_EXTENSIONS): a video, read frame by frame;
- any other file: an image (a file that is not one fails when it is decoded, naming it);
- otherwise a glob pattern (``*``, ``?``, ``[``; ``**`` recursive), its matches sorted, named as inside the
  pattern's fixed leading folder.

Folders are searched and lists read as ``data.unlabeled``'s are (hmkd.data.unlabeled), with videos added. Two inputs
that would write the same output name are refused before anything runs, naming both files.
"""
import glob
import os
from typing import Dict, List, NamedTuple, Sequence

from hmkd.data.files import IMAGE_EXTENSIONS
from hmkd.data.unlabeled import LIST_EXTENSIONS, folder_images, listed_images

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
IMAGE = "image"
VIDEO = "video"


class Input(NamedTuple):
    path: str   # absolute
    stem: str   # output name without extension, "/"-separated, unique within a run
    kind: str   # IMAGE or VIDEO


def kind_of(path: str) -> str:
    return VIDEO if path.lower().endswith(VIDEO_EXTENSIONS) else IMAGE


def _stem(path: str, root: str) -> str:
    """The name inside ``root`` without its extension, or the file name when ``path`` lies outside it."""
    rel = os.path.relpath(path, root)
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir or os.path.isabs(rel):
        rel = os.path.basename(path)
    return os.path.splitext(rel)[0].replace(os.sep, "/")


def _folder(folder: str) -> List[Input]:
    """The folder search of ``data.unlabeled`` (recursive, sorted, symlinked folders once), images and videos."""
    return [Input(p, _stem(p, folder), kind_of(p)) for p in folder_images(folder, IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)]


def _list_file(list_path: str) -> List[Input]:
    """The list format of ``data.unlabeled``: one path per line, relative ones against the list's folder."""
    base = os.path.dirname(list_path)
    return [Input(p, _stem(p, base), kind_of(p)) for p in listed_images(list_path, "list")]


def _glob_root(pattern: str) -> str:
    """The pattern's leading folders before the first wildcard: the root its matches are named from."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.path.abspath(os.sep.join(fixed) or (os.sep if pattern.startswith(os.sep) else os.curdir))


def _one(source: str) -> List[Input]:
    path = os.path.abspath(os.path.expanduser(source))
    if os.path.isdir(path):
        found = _folder(path)
        if not found:
            raise ValueError("folder %s holds no image or video files (%s)" % (
                source, " ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)))
        return found
    if os.path.exists(path):
        if path.lower().endswith(LIST_EXTENSIONS):
            return _list_file(path)
        return [Input(path, _stem(path, os.path.dirname(path)), kind_of(path))]
    if glob.has_magic(source):
        root = _glob_root(os.path.expanduser(source))
        matches = sorted(os.path.abspath(m) for m in glob.glob(os.path.expanduser(source), recursive=True))
        found = [Input(m, _stem(m, root), kind_of(m)) for m in matches if os.path.isfile(m)]
        if not found:
            raise ValueError("pattern %s matches no files" % source)
        return found
    raise FileNotFoundError("%s does not exist; give image or video files, folders, glob patterns or .txt/.lst "
                            "lists" % source)


def expand_sources(sources: Sequence[str]) -> List[Input]:
    """Every input of ``sources`` in order (a file given twice is read once); see the module's docstring."""
    if not sources:
        raise ValueError("no SOURCE given; name image or video files, folders, glob patterns or .txt/.lst lists")
    inputs: List[Input] = []
    seen: Dict[str, Input] = {}
    by_stem: Dict[str, Input] = {}
    for source in sources:
        for item in _one(source):
            if item.path in seen:
                continue
            other = by_stem.get(item.stem)
            if other is not None:
                raise ValueError("%s and %s would both be written as %s; predict them in separate runs (--out) or "
                                 "give their common folder as the SOURCE" % (other.path, item.path, item.stem))
            seen[item.path] = by_stem[item.stem] = item
            inputs.append(item)
    return inputs
