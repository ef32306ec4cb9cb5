"""Cityscapes fine annotations, found from the official folder layout (no list files).

Usage:
    ds = CityscapesDataset("/data/cityscapes", "val")                          # gtFine *_labelIds.png, mapped
    ds = CityscapesDataset("/data/cityscapes", "train", label_type="labelTrainIds", transform=...)
    ds = CityscapesDataset("/data/cityscapes", "test", labels_optional=True)   # gtFine/test may be absent

Layout: leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png and gtFine/<split>/<city>/<stem>_gtFine_<label_type>.png.
The official test download's labels hold no class (labelIds 0, all ignored); without gtFine/<split> at all a split
that may be unlabelled (``labels_optional``) has samples without labels, which load as all-ignore.
"""
import os
from typing import Dict, List, Tuple

import numpy as np

from hmkd.data.base import IGNORE_INDEX, Sample, SegDataset
from hmkd.data.files import DatasetError, list_files
from hmkd.data.validation import LabelSpec, identity_spec

CLASS_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
               "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
# Official colours from cityscapesScripts' labels.py, in train-id order.
PALETTE = ((128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
           (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
           (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32))
# labelIds of the 19 evaluated classes; their position is the train id.
EVAL_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
LABEL_TYPES = ("labelIds", "labelTrainIds")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_%s.png"  # % label type


def label_id_to_train_id() -> np.ndarray:
    """256-entry table: the 19 evaluated labelIds -> 0..18, everything else (incl. 255 = license plate -1) -> 255."""
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    lut[list(EVAL_LABEL_IDS)] = np.arange(len(EVAL_LABEL_IDS), dtype=np.uint8)
    return lut


def train_id_to_label_id() -> np.ndarray:
    """256-entry table: train ids 0..18 -> their labelIds, what the benchmark server scores; other values -> 0
    (unlabeled), which the server ignores."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[:len(EVAL_LABEL_IDS)] = EVAL_LABEL_IDS
    return lut


def cityscapes_label_spec(label_type: str = "labelIds") -> LabelSpec:
    if label_type == "labelIds":
        # 0..33 are the defined ids; -1 (license plate) is stored as 255 in the uint8 PNGs.
        return LabelSpec(list(range(34)) + [255], label_id_to_train_id(),
                         "labelIds 0..33 or 255 (license plate -1) for Cityscapes gtFine labelIds")
    if label_type == "labelTrainIds":
        return identity_spec(len(CLASS_NAMES), IGNORE_INDEX, "Cityscapes labelTrainIds")
    raise ValueError("label_type must be one of %s, got %r" % (", ".join(LABEL_TYPES), label_type))


def _files_by_key(split_dir: str, suffix: str) -> Dict[Tuple[str, str], str]:
    """(city, stem) -> path of every <city>/<stem><suffix> file in a split folder."""
    found = {}
    for city in sorted(os.listdir(split_dir)):
        if os.path.isdir(os.path.join(split_dir, city)):
            for name in list_files(os.path.join(split_dir, city), suffix):
                found[(city, name[:-len(suffix)])] = os.path.join(split_dir, city, name)
    return found


def cityscapes_samples(root: str, split: str, label_type: str = "labelIds", labels_optional: bool = False
                       ) -> List[Sample]:
    """Pairs every image with its label by city and file stem; raises DatasetError listing unpaired files.

    With ``labels_optional`` a split without gtFine/<split> gives samples whose label is None; one with that folder
    must still pair every image, since a half-labelled split is a broken copy, not a test split."""
    if label_type not in LABEL_TYPES:
        raise ValueError("label_type must be one of %s, got %r" % (", ".join(LABEL_TYPES), label_type))
    if not os.path.isdir(root):
        raise DatasetError(["Cityscapes root %s does not exist; expected a directory holding leftImg8bit/ and gtFine/"
                            % root])
    image_dir, label_dir = os.path.join(root, "leftImg8bit", split), os.path.join(root, "gtFine", split)
    unlabelled = labels_optional and not os.path.isdir(label_dir)
    for directory, pattern in ((image_dir, "<city>/*" + IMAGE_SUFFIX), (label_dir, "<city>/*" + LABEL_SUFFIX
                                                                         % label_type)):
        if not os.path.isdir(directory) and not (unlabelled and directory == label_dir):
            parent = os.path.dirname(directory)
            found = sorted(os.listdir(parent)) if os.path.isdir(parent) else []
            raise DatasetError(["Cityscapes split directory %s does not exist; expected %s/%s (found splits: %s)"
                                % (directory, directory, pattern, ", ".join(found) or "none")])
    images = _files_by_key(image_dir, IMAGE_SUFFIX)
    if not images:
        raise DatasetError(["Cityscapes split directory %s holds no images; expected %s/<city>/*%s"
                            % (image_dir, image_dir, IMAGE_SUFFIX)])
    if unlabelled:
        return [Sample(images[key], None) for key in sorted(images)]
    label_suffix = LABEL_SUFFIX % label_type
    labels = _files_by_key(label_dir, label_suffix)
    problems = []
    for key in sorted(set(images) - set(labels)):
        problems.append("image %s has no label; expected %s" % (images[key], os.path.join(label_dir, key[0],
                                                                                         key[1] + label_suffix)))
    for key in sorted(set(labels) - set(images)):
        problems.append("label %s has no image; expected %s" % (labels[key], os.path.join(image_dir, key[0],
                                                                                         key[1] + IMAGE_SUFFIX)))
    if problems:
        raise DatasetError(problems, "Cityscapes %s: %d images but %d labels, %d unpaired"
                           % (split, len(images), len(labels), len(problems)))
    return [Sample(images[key], labels[key]) for key in sorted(images)]


class CityscapesDataset(SegDataset):
    """19-class Cityscapes; ``label_type`` picks gtFine *_labelIds.png (mapped here) or *_labelTrainIds.png."""

    def __init__(self, root: str, split: str = "train", label_type: str = "labelIds", transform=None, seed: int = 0,
                 labels_optional: bool = False):
        super().__init__(cityscapes_samples(root, split, label_type, labels_optional), len(CLASS_NAMES),
                         CLASS_NAMES, PALETTE, cityscapes_label_spec(label_type), transform=transform, seed=seed,
                         name="Cityscapes %s" % split)
        self.root, self.split, self.label_type = root, split, label_type
