"""Decoding ``hmkd predict``'s inputs to what the network's pre-processing takes: HxWx3 uint8 BGR, as evaluation reads.

Usage:
    conversions = Conversions(strict=False)            # one per run: warns once per kind of conversion
    image_bgr = read_image("a.png", conversions)       # BadInput (a ValueError) naming the file when it cannot be
    video = Video("clip.mp4"); for index, frame_bgr in video.frames(): ...; video.fps, video.frame_count

8-bit colour and greyscale images come out exactly as ``hmkd eval`` reads them (OpenCV, IMREAD_COLOR: grey
replicated to three channels, a JPEG turned by its EXIF orientation). 16-bit images are cut to their high byte and
RGBA images lose their alpha, as IMREAD_COLOR does too, but here with one warning per kind per run (``strict``:
refused instead), since a user's 16-bit or transparent file may not mean what the conversion makes of it.
"""
import threading
import warnings
from typing import Dict, Iterator, Optional, Tuple

import cv2
import numpy as np

from hmkd.data.files import DatasetError, decode_bytes, read_bytes


class BadInput(ValueError):
    """An input that cannot be used, in one line naming it: skipped with --skip-bad, else the run stops."""


CONVERSIONS = {
    "16-bit": "cut to 8 bits (the high byte of each value)",
    "RGBA": "its alpha channel dropped (no blending)",
}


class Conversions:
    """Counts the conversions of a run and warns at the first of each kind (thread-safe: decoders run in threads)."""

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.counts: Dict[str, int] = {kind: 0 for kind in CONVERSIONS}
        self._lock = threading.Lock()

    def note(self, kind: str, path: str) -> None:
        if self.strict:
            raise BadInput("image %s is %s; --strict-input refuses it (without that option it is converted: %s)"
                           % (path, kind, CONVERSIONS[kind]))
        with self._lock:
            self.counts[kind] += 1
            first = self.counts[kind] == 1
        if first:
            warnings.warn("image %s is %s: %s; every other %s input of this run is converted the same way (count at "
                          "the end; --strict-input refuses them)" % (path, kind, CONVERSIONS[kind], kind))

    def summary(self) -> str:
        return ", ".join("%d %s converted" % (n, kind) for kind, n in self.counts.items() if n)


def _is_jpeg(data: np.ndarray) -> bool:
    return data.size >= 2 and data[0] == 0xFF and data[1] == 0xD8


def read_image(path: str, conversions: Conversions) -> np.ndarray:
    """HxWx3 uint8 BGR; BadInput for an unreadable, empty, undecodable or unsupported file."""
    try:
        data = read_bytes(path, "image")
        if not data.size:
            raise BadInput("image %s is empty (0 bytes); expected an image file" % path)
        if _is_jpeg(data):  # always 8-bit, never alpha: decoded as evaluation decodes it, EXIF orientation included
            return decode_bytes(data, path, "image", cv2.IMREAD_COLOR)
        image = decode_bytes(data, path, "image", cv2.IMREAD_UNCHANGED)
    except BadInput:
        raise
    except DatasetError as exc:
        raise BadInput(str(exc))
    if image.dtype == np.uint16:
        conversions.note("16-bit", path)
        image = (image >> 8).astype(np.uint8)  # what IMREAD_COLOR does with 16-bit files
    elif image.dtype != np.uint8:
        raise BadInput("image %s holds %s values; expected 8- or 16-bit integers" % (path, image.dtype))
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        conversions.note("RGBA", path)
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if channels != 3:
        raise BadInput("image %s has %d channels; expected greyscale, RGB or RGBA" % (path, channels))
    return image


class Video:
    """A video file opened with OpenCV's VideoCapture; BadInput when it cannot be opened or holds no frame."""

    def __init__(self, path: str):
        self.path = path
        self.capture = cv2.VideoCapture(path)
        if not self.capture.isOpened():
            self.capture.release()
            raise BadInput("video %s cannot be opened (OpenCV's VideoCapture); expected a readable video file"
                           % path)
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count: Optional[int] = count if count > 0 else None  # the container's figure: an estimate

    def frames(self) -> Iterator[Tuple[int, np.ndarray]]:
        """(index, HxWx3 uint8 BGR) in order; the capture is released at the end (or when the loop is left)."""
        index = 0
        try:
            while True:
                ok, frame = self.capture.read()
                if not ok:
                    break
                yield index, frame
                index += 1
        finally:
            self.capture.release()
        if index == 0:
            raise BadInput("video %s holds no frame OpenCV can decode; expected a readable video file" % self.path)

    def close(self) -> None:
        self.capture.release()


def video_frame_count(path: str) -> Optional[int]:
    """The container's frame count (an estimate; None when it has none or cannot be opened), for progress only."""
    capture = cv2.VideoCapture(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if capture.isOpened() else 0
    finally:
        capture.release()
    return count if count > 0 else None
