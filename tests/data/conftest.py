"""Tiny datasets in the real official layouts, written with cv2 under pytest's tmp_path."""
import os

import cv2
import numpy as np
import pytest

HEIGHT, WIDTH = 16, 32


def _write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array), path
    return path


def _truncate(path):
    """Keeps the first half of a valid file's bytes, like an interrupted copy."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def random_image(rng, height=HEIGHT, width=WIDTH):
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.fixture
def make_cityscapes(tmp_path):
    """Writes leftImg8bit/<split>/<city>/ and gtFine/<split>/<city>/ with labels cycling through ``values``."""

    def make(splits=None, label_type="labelIds", values=(7, 8, 26, 0, 255)):
        root = str(tmp_path / "cityscapes")
        splits = splits or {"train": {"aachen": 2, "bochum": 2}, "val": {"lindau": 1}}
        rng = np.random.default_rng(0)
        for split, cities in splits.items():
            for city, count in cities.items():
                for i in range(count):
                    stem = "%s_%06d_000019" % (city, i)
                    _write_png(os.path.join(root, "leftImg8bit", split, city, stem + "_leftImg8bit.png"),
                              random_image(rng))
                    label = np.resize(np.array(values, dtype=np.uint8), HEIGHT * WIDTH).reshape(HEIGHT, WIDTH)
                    label_name = "%s_gtFine_%s.png" % (stem, label_type)
                    _write_png(os.path.join(root, "gtFine", split, city, label_name), label)
        return root

    return make


@pytest.fixture
def make_camvid(tmp_path):
    """Writes the SegNet layout: <split>/ and <split>annot/ with the same file names."""

    def make(splits=None, values=tuple(range(12))):
        root = str(tmp_path / "camvid")
        splits = splits or {"train": 3, "val": 1}
        rng = np.random.default_rng(1)
        for split, count in splits.items():
            for i in range(count):
                name = "0001TP_%06d.png" % (i * 30)
                _write_png(os.path.join(root, split, name), random_image(rng))
                label = np.resize(np.array(values, dtype=np.uint8), HEIGHT * WIDTH).reshape(HEIGHT, WIDTH)
                _write_png(os.path.join(root, split + "annot", name), label)
        return root

    return make


@pytest.fixture
def write_png():
    return _write_png


@pytest.fixture
def truncate():
    return _truncate
