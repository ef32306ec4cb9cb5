"""What ``hmkd predict`` writes for each image or frame, one folder per kind under --out, each file atomically.

Usage:
    layout = Outputs("out/", ["palette", "overlay"], class_names, alpha=0.5, label_ids=False)
    todo = layout.missing("a/b")                       # kinds whose file is not there yet (all with overwrite=True)
    for path, data in layout.render("a/b", todo, image_bgr, pred_hw, probs_khw): atomic_write_bytes(path, data)

Kinds (KINDS), each in its own folder, named after the input (``a/b.png`` -> ``<kind>/a/b.<ext>``):
- ``palette``: an indexed PNG whose pixel values are the class ids and whose palette holds the classes' colours: a
  picture in any viewer and the label map for any reader (PIL/numpy read the indices);
- ``label``: a greyscale PNG of the class ids (trainIds), or Cityscapes labelIds with ``label_ids`` (the table of
  the benchmark-server files);
- ``overlay``: the image blended with the colour map (``alpha`` is the colour map's weight), PNG;
- ``probs``: float16 ``.npy`` of the per-class softmax probabilities, (K, H, W);
- ``confidence``: float16 ``.npy`` of the highest probability per pixel, (H, W).
The colours are the dataset's when the model's class names are a known dataset's (Cityscapes, CamVid), else
hmkd's default palette (evenly spaced hues), as evaluation's pictures use.
"""
import io
import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from hmkd.data import camvid, cityscapes
from hmkd.data.base import colorize, default_palette

KINDS = ("palette", "label", "overlay", "probs", "confidence")
EXTENSIONS = {"palette": ".png", "label": ".png", "overlay": ".png", "probs": ".npy", "confidence": ".npy"}
VIDEO_FOLDER = "video"
DATASET_PALETTES = {tuple(cityscapes.CLASS_NAMES): ("Cityscapes", cityscapes.PALETTE),
                    tuple(camvid.CLASS_NAMES): ("CamVid", camvid.PALETTE)}
# atomic_open's temp files (".<name>.tmp.<random>"): what a killed run leaves behind, removed by the next one.
_TEMP_FILE = re.compile(r"^\..+\.tmp\.[0-9A-Za-z_]+(\.[0-9A-Za-z]+)?$")


def parse_kinds(text: str) -> List[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError("--outputs takes a comma-separated list of %s, got %r" % (", ".join(KINDS), text))
    return list(dict.fromkeys(kinds))


def palette_for(class_names: Sequence[str]) -> Tuple[List[Tuple[int, int, int]], str]:
    """(RGB colour per class, where it comes from)."""
    known = DATASET_PALETTES.get(tuple(class_names))
    if known is not None:
        return [tuple(c) for c in known[1]], "the %s palette" % known[0]
    return default_palette(len(class_names)), "hmkd's default palette (evenly spaced hues; no known dataset's classes)"


def encode_png(array: np.ndarray, what: str) -> bytes:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    assert ok, "OpenCV failed to encode the %s PNG" % what
    return encoded.tobytes()


def indexed_png(pred_hw: np.ndarray, palette: Sequence[Sequence[int]]) -> bytes:
    """An 8-bit palette PNG (colour type 3): pixel = class id, PLTE = the classes' colours (black beyond them)."""
    from PIL import Image

    height, width = pred_hw.shape
    picture = Image.frombytes("P", (width, height), np.ascontiguousarray(pred_hw, dtype=np.uint8).tobytes())
    table = np.zeros((256, 3), dtype=np.uint8)
    table[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    picture.putpalette(table.reshape(-1).tolist())
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float16), allow_pickle=False)
    return buffer.getvalue()


def overlay_picture(image_bgr: np.ndarray, pred_hw: np.ndarray, palette: Sequence[Sequence[int]],
                    alpha: float) -> np.ndarray:
    """HxWx3 uint8 BGR: (1 - alpha) * image + alpha * colour map, rounded."""
    colours_bgr = np.ascontiguousarray(colorize(pred_hw, palette)[..., ::-1])
    return cv2.addWeighted(image_bgr, 1.0 - alpha, colours_bgr, alpha, 0.0)


class Outputs:
    """The output files of one run: where each kind goes and how it is encoded."""

    def __init__(self, out_dir: str, kinds: Sequence[str], class_names: Sequence[str], alpha: float = 0.5,
                 label_ids: bool = False, overwrite: bool = False):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("--alpha must be in [0, 1] (the colour map's weight in the overlay), got %r" % alpha)
        unknown = [k for k in kinds if k not in KINDS]
        assert not unknown, unknown
        self.out_dir, self.kinds, self.alpha, self.overwrite = out_dir, list(kinds), float(alpha), overwrite
        self.class_names = list(class_names)
        self.palette, self.palette_source = palette_for(class_names)
        self.lut: Optional[np.ndarray] = None
        if label_ids:
            if tuple(class_names) != tuple(cityscapes.CLASS_NAMES):
                raise ValueError("--label-ids writes Cityscapes labelIds, but the model's %d classes are not "
                                 "Cityscapes' 19 (%s ...); leave it out to write the class ids"
                                 % (len(class_names), ", ".join(list(class_names)[:3])))
            if "label" not in self.kinds:
                raise ValueError("--label-ids changes the label PNGs; add label to --outputs")
            self.lut = cityscapes.train_id_to_label_id()

    def path(self, kind: str, stem: str) -> str:
        return os.path.join(self.out_dir, kind, *stem.split("/")) + EXTENSIONS[kind]

    def video_path(self, stem: str) -> str:
        return os.path.join(self.out_dir, VIDEO_FOLDER, *stem.split("/")) + ".mp4"

    def missing(self, stem: str) -> List[str]:
        """The kinds to (re)write for ``stem``: all with ``overwrite``, else those whose file does not exist."""
        if self.overwrite:
            return list(self.kinds)
        return [k for k in self.kinds if not os.path.exists(self.path(k, stem))]

    @property
    def needs_probabilities(self) -> bool:
        return "probs" in self.kinds or "confidence" in self.kinds

    def render(self, stem: str, kinds: Iterable[str], image_bgr: np.ndarray, pred_hw: np.ndarray,
               probs_khw: Optional[np.ndarray] = None) -> List[Tuple[str, bytes]]:
        """(path, file bytes) of each of ``kinds`` for one prediction (class ids HxW uint8; probabilities KxHxW
        float16 for probs/confidence)."""
        files = []
        for kind in kinds:
            if kind == "palette":
                data = indexed_png(pred_hw, self.palette)
            elif kind == "label":
                data = encode_png(cv2.LUT(pred_hw, self.lut) if self.lut is not None else pred_hw, "label")
            elif kind == "overlay":
                data = encode_png(overlay_picture(image_bgr, pred_hw, self.palette, self.alpha), "overlay")
            else:
                assert probs_khw is not None, "probabilities were not computed"
                data = npy_bytes(probs_khw if kind == "probs" else probs_khw.max(axis=0))
            files.append((self.path(kind, stem), data))
        return files

    def remove_stale_temps(self) -> List[str]:
        """Deletes the temp files a killed run left in the output folders (never a finished output); returns them."""
        removed = []
        for folder in [os.path.join(self.out_dir, k) for k in KINDS] + [os.path.join(self.out_dir, VIDEO_FOLDER)]:
            for dirpath, _, filenames in os.walk(folder):
                for name in filenames:
                    if _TEMP_FILE.match(name):
                        os.unlink(os.path.join(dirpath, name))
                        removed.append(os.path.join(dirpath, name))
        return removed


def check_out_dir(out_dir: str) -> None:
    """Refuses, before any model is loaded, an --out that is a file or a folder this process cannot write in (tried
    with a real file: permission bits say nothing to root, nor about a read-only mount)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError("--out %s is a file, not a folder; remove or rename it, or pass another --out" % out_dir)
    folder = os.path.abspath(out_dir)
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, ".hmkd-predict-write-check.%d" % os.getpid())
        with open(probe, "wb"):
            pass
        os.unlink(probe)
    except OSError as exc:
        raise ValueError("cannot write in --out %s (%s); pass an --out folder you can write" % (
            out_dir, exc.strerror or exc))


class VideoOut:
    """An annotated video (the overlay of every frame), published atomically when the last frame is in: frames go
    to a temp file beside it, which is then copied through hmkd.atomic (the file, or nothing)."""

    def __init__(self, path: str, fps: float, size_hw: Tuple[int, int]):
        self.path, self.fps, self.size_hw = path, fps, size_hw
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        self.tmp = os.path.join(folder, ".%s.tmp.%s.mp4" % (name, os.urandom(6).hex()))
        self.writer = cv2.VideoWriter(self.tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (size_hw[1], size_hw[0]))
        if not self.writer.isOpened():
            self.writer.release()
            raise ValueError("cannot write video %s (OpenCV's VideoWriter, mp4v)" % path)
        self.frames = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        if tuple(frame_bgr.shape[:2]) != tuple(self.size_hw):
            frame_bgr = cv2.resize(frame_bgr, (self.size_hw[1], self.size_hw[0]))
        self.writer.write(frame_bgr)
        self.frames += 1

    def publish(self) -> None:
        import shutil

        from hmkd.atomic import atomic_open

        self.writer.release()
        try:
            with open(self.tmp, "rb") as source, atomic_open(self.path, os.path.getsize(self.tmp)) as target:
                shutil.copyfileobj(source, target, 1 << 20)
        finally:
            self.discard()

    def discard(self) -> None:
        self.writer.release()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)
