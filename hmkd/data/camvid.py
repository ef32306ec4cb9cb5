"""CamVid in the SegNet layout (11 classes, 360x480), found from its folders.

Usage:
    ds = CamVidDataset("/data/camvid", "train", transform=TrainTransform((360, 480)))

Layout: <split>/<name>.png with <split>annot/<name>.png (same file name); label 11 is void and becomes 255.
"""
import os
from typing import List

import numpy as np

from hmkd.data.base import IGNORE_INDEX, Sample, SegDataset
from hmkd.data.files import IMAGE_EXTENSIONS, DatasetError, list_files
from hmkd.data.validation import LabelSpec

CLASS_NAMES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car", "Pedestrian",
               "Bicyclist")
# Colours of the original CamVid label_colors.txt (Sky, Building, Column_Pole, Road, Sidewalk, Tree, SignSymbol,
# Fence, Car, Pedestrian, Bicyclist).
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192), (128, 128, 0), (192, 128, 128),
           (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
VOID = 11


def camvid_label_spec() -> LabelSpec:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[:VOID] = np.arange(VOID, dtype=np.uint8)
    return LabelSpec(range(VOID + 1), lut, "0..10 or 11 (void) for CamVid")


def _image_files(directory: str) -> List[str]:
    with os.scandir(directory) as entries:
        return sorted(e.name for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS) and e.is_file())


def camvid_samples(root: str, split: str) -> List[Sample]:
    """Pairs <split>/<name> with <split>annot/<name>; raises DatasetError listing unpaired files."""
    if not os.path.isdir(root):
        raise DatasetError(["CamVid root %s does not exist; expected a directory holding %s/ and %sannot/"
                            % (root, split, split)])
    image_dir, label_dir = os.path.join(root, split), os.path.join(root, split + "annot")
    for directory in (image_dir, label_dir):
        if not os.path.isdir(directory):
            raise DatasetError(["CamVid split directory %s does not exist; expected the SegNet layout %s/ + %sannot/ "
                                "with the same file names (found: %s)"
                                % (directory, split, split, ", ".join(sorted(os.listdir(root))) or "nothing")])
    images, labels = _image_files(image_dir), list_files(label_dir, ".png")
    if not images:
        raise DatasetError(["CamVid split directory %s holds no images; expected %s/*.png" % (image_dir, image_dir)])
    problems = ["image %s has no label; expected %s" % (os.path.join(image_dir, n), os.path.join(label_dir, n))
                for n in sorted(set(images) - set(labels))]
    problems += ["label %s has no image; expected %s" % (os.path.join(label_dir, n), os.path.join(image_dir, n))
                 for n in sorted(set(labels) - set(images))]
    if problems:
        raise DatasetError(problems, "CamVid %s: %d images but %d labels, %d unpaired"
                           % (split, len(images), len(labels), len(problems)))
    return [Sample(os.path.join(image_dir, n), os.path.join(label_dir, n)) for n in images]


class CamVidDataset(SegDataset):
    """11-class CamVid (SegNet split: 367 train, 101 val, 233 test)."""

    def __init__(self, root: str, split: str = "train", transform=None, seed: int = 0):
        super().__init__(camvid_samples(root, split), len(CLASS_NAMES), CLASS_NAMES, PALETTE, camvid_label_spec(),
                         transform=transform, seed=seed, name="CamVid %s" % split)
        self.root, self.split = root, split
