"""The context scenes: colour says nothing, pairs share a texture, shape decides within a pair."""
import cv2
import numpy as np
import pytest

from hmkd.data.builder import build_dataset
from hmkd.data.context_scenes import family_of, generate_context_scene
from hmkd.data.synthetic import SyntheticDataset


def scenes(count, num_classes=7, size=(64, 96)):
    return [generate_context_scene(np.random.Generator(np.random.PCG64([0, 0, i])), num_classes, size)
            for i in range(count)]


def test_every_class_appears_and_labels_are_in_range():
    labels = np.concatenate([label.ravel() for _, label in scenes(40)])
    present = set(np.unique(labels).tolist())
    assert set(range(7)) <= present <= set(range(7)) | {255}


def _class_colour_spread(pairs, num_classes):
    """Largest difference between classes of their mean colour, over regions (each region counts once)."""
    sums, counts = np.zeros((num_classes, 3)), np.zeros(num_classes)
    for image, label in pairs:
        for cls in range(num_classes):
            count, parts = cv2.connectedComponents((label == cls).astype(np.uint8))
            for part in range(1, count):
                sums[cls] += image[parts == part].astype(np.float64).mean(0)
                counts[cls] += 1
    return np.ptp(sums / counts[:, None], axis=0).max()


def test_colour_does_not_tell_the_classes_apart():
    """Region colours are drawn whatever the class: per-class means agree within sampling noise, where the stripes
    scenes' class palette sets them far apart."""
    from hmkd.data.synthetic import generate_scene
    stripes = [generate_scene(np.random.Generator(np.random.PCG64([0, 0, i])), 7, (64, 96)) for i in range(100)]
    assert _class_colour_spread(stripes, 7) > 60
    assert _class_colour_spread(scenes(200), 7) < 25


def test_the_classes_of_a_pair_share_a_texture_family():
    assert family_of(np.arange(7)).tolist() == [0, 1, 1, 2, 2, 3, 3]


def _dominant_orientation(image, mask):
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32), (3, 3), 0)
    gy, gx = np.gradient(grey)
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    angle = np.arctan2(gy[inner], gx[inner]) * 2  # doubled: a stripe's two gradient directions agree
    weight = np.hypot(gx[inner], gy[inner])
    return np.angle(np.sum(weight * np.exp(1j * angle))) / 2, inner.sum()


def test_textures_differ_between_pairs_and_agree_within_one():
    by_class = {c: [] for c in range(7)}
    for image, label in scenes(80):
        for cls in range(7):
            angle, area = _dominant_orientation(image, label == cls)
            if area > 300:
                by_class[cls].append(np.exp(2j * angle))
    mean = {c: np.angle(np.mean(v)) / 2 for c, v in by_class.items() if v}

    def gap(a, b):
        d = abs(mean[a] - mean[b]) % np.pi
        return min(d, np.pi - d)
    assert gap(1, 2) < 0.2 and gap(3, 4) < 0.2 and gap(5, 6) < 0.2
    assert gap(1, 3) > 0.4 and gap(3, 5) > 0.4 and gap(0, 1) > 0.4


def test_odd_classes_are_ellipses_and_even_ones_polygons():
    """Unoccluded, uncut regions: an ellipse fills pi/4 of its rotated bounding box, a rectangle all of it and a
    triangle about half; the two never overlap in this measure by much."""
    fills = {0: [], 1: []}
    for _, label in scenes(150):
        for cls in range(1, 7):
            count, parts = cv2.connectedComponents((label == cls).astype(np.uint8))
            for part in range(1, count):
                mask = (parts == part).astype(np.uint8)
                ys, xs = np.nonzero(mask)
                if mask.sum() < 150 or ys.min() == 0 or xs.min() == 0 or ys.max() == 63 or xs.max() == 95:
                    continue
                contour = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0][0]
                hull = cv2.contourArea(cv2.convexHull(contour))
                approx = cv2.approxPolyDP(contour, 0.04 * cv2.arcLength(contour, True), True)
                if hull > 0 and mask.sum() / hull > 0.97:  # convex: not cut by another shape
                    fills[cls % 2].append(len(approx))
    assert len(fills[0]) > 10 and len(fills[1]) > 10
    assert np.median(fills[0]) <= 4 < np.median(fills[1])


def test_dataset_option_and_its_errors():
    ds = build_dataset({"name": "synthetic", "scene": "context", "num_classes": 7, "num_train": 4}, split="train",
                       train=False)
    image, label = ds.load(3)
    again = generate_context_scene(np.random.Generator(np.random.PCG64([0, 0, 3])), 7, (64, 96))
    assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
    with pytest.raises(ValueError, match="data.scene must be one of stripes, context"):
        SyntheticDataset(7, scene="dots")
    with pytest.raises(ValueError, match="data.num_classes must be odd and >= 3 for data.scene=context"):
        SyntheticDataset(6, scene="context")
