"""Decoding of image and label files with one-line, path-naming errors.

Usage:
    image_bgr = read_image("/data/cityscapes/leftImg8bit/val/lindau/x_leftImg8bit.png")
    label = read_label("/data/cityscapes/gtFine/val/lindau/x_gtFine_labelIds.png")
"""
import os
from typing import List, Optional, Sequence, Union

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class DatasetError(ValueError):
    """A dataset on disk does not match what its layout promises.

    ``problems`` holds one line per offending file; the message shows the first few, so a run that checks 3475 files
    reports what to fix without flooding the log.
    """

    def __init__(self, problems: Union[str, Sequence[str]], summary: Optional[str] = None, max_report: int = 5):
        # A plain string is one problem: DataLoader workers and pickle re-create exceptions from their message.
        self.problems: List[str] = [problems] if isinstance(problems, str) else list(problems)
        self.summary = summary
        lines = self.problems[:max_report]
        if len(self.problems) == 1:
            message = self.problems[0] if summary is None else "%s: %s" % (summary, self.problems[0])
        else:
            head = summary if summary is not None else "%d dataset problems found" % len(self.problems)
            message = head + (":\n  " + "\n  ".join(lines) if lines else "")
            if len(self.problems) > max_report:
                message += "\n  ... and %d more" % (len(self.problems) - max_report)
        super().__init__(message)


def read_bytes(path: str, kind: str = "image") -> np.ndarray:
    """The file's bytes as uint8, or a DatasetError naming ``kind`` and ``path`` (for decoders that look at the bytes
    before choosing how to decode them, as ``hmkd predict`` does)."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(["%s %s cannot be read (%s); expected a readable file" % (kind, path, exc)])
    return data


def _decode(path: str, kind: str, flags: int) -> np.ndarray:
    return decode_bytes(read_bytes(path, kind), path, kind, flags)


def decode_bytes(data: np.ndarray, path: str, kind: str, flags: int) -> np.ndarray:
    """Decodes from bytes so a truncated JPEG (which OpenCV half-decodes without failing) is caught by its trailer."""
    decoded = cv2.imdecode(data, flags) if data.size else None
    truncated_jpeg = data.size >= 2 and data[0] == 0xFF and data[1] == 0xD8 and not (
        data[-2] == 0xFF and data[-1] == 0xD9)
    if decoded is None or truncated_jpeg:
        raise DatasetError(["%s %s cannot be decoded (%d bytes, truncated or not an image); expected a complete "
                            "PNG/JPEG file" % (kind, path, data.size)])
    return decoded


def read_image(path: str) -> np.ndarray:
    """Returns the image as HxWx3 uint8 in OpenCV's BGR order."""
    return _decode(path, "image", cv2.IMREAD_COLOR)


def read_label(path: str) -> np.ndarray:
    """Returns the label as HxW uint8 class ids; IMREAD_UNCHANGED so a colour-coded or 16-bit label is refused, not
    silently converted to grey levels that look like class ids."""
    label = _decode(path, "label", cv2.IMREAD_UNCHANGED)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DatasetError(["label %s has shape %s and dtype %s; expected a single-channel 8-bit image of class ids"
                            % (path, "x".join(str(s) for s in label.shape), label.dtype)])
    return label


def list_files(directory: str, suffix: str) -> List[str]:
    """Sorted names of the regular files in ``directory`` ending in ``suffix`` (case-sensitive, like the layouts)."""
    with os.scandir(directory) as entries:
        return sorted(e.name for e in entries if e.name.endswith(suffix) and e.is_file())
