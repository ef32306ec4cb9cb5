"""The dataset base class shared by every format: samples in, augmented tensors out, keyed by (seed, epoch, index).

Usage:
    ds = CityscapesDataset("/data/cityscapes", "train", transform=TrainTransform((512, 1024)), seed=0)
    ds.validate("full"); ds.set_epoch(3); item = ds[7]   # {"image": (3,H,W) float, "label": (H,W) long, "name": str}
    write_sample_list(ds, "train.txt")                   # freeze the derived pairs for inspection or reuse
"""
import os
from collections import namedtuple
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from hmkd.atomic import atomic_write_text
from hmkd.data.files import DatasetError, read_image, read_label
from hmkd.data.transforms import EvalTransform
from hmkd.data.validation import LabelSpec, check_samples, label_value_problem

IGNORE_INDEX = 255

Sample = namedtuple("Sample", ["image", "label"])
Sample.__doc__ = "Absolute paths of one image and its label (None: unlabelled, as a test split's images may be)."


def sample_rng(seed: int, epoch: int, index: int, *salt: int) -> np.random.Generator:
    """The generator for one sample's augmentation: a pure function of its key, so workers and resumes agree.
    ``salt``: extra words that set apart a second stream of samples keyed the same (hmkd.data.unlabeled)."""
    return np.random.Generator(np.random.PCG64([int(seed), int(epoch), int(index)] + [int(s) for s in salt]))


def default_palette(num_classes: int) -> List[Tuple[int, int, int]]:
    """Distinct RGB colours for formats without official ones (evenly spaced hues, alternating brightness)."""
    hsv = np.zeros((1, num_classes, 3), dtype=np.uint8)
    hsv[0, :, 0] = (np.arange(num_classes) * 180 // max(num_classes, 1)).astype(np.uint8)
    hsv[0, :, 1] = 200
    hsv[0, :, 2] = np.where(np.arange(num_classes) % 2 == 0, 230, 150)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    return [tuple(int(c) for c in colour) for colour in rgb]


def colorize(label_hw: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int = IGNORE_INDEX,
             ignore_color: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Train-id label -> HxWx3 uint8 RGB picture, for plots of predictions."""
    table = np.zeros((256, 3), dtype=np.uint8)
    table[ignore_index] = ignore_color
    table[:len(palette)] = np.asarray(palette, dtype=np.uint8)
    return table[np.asarray(label_hw, dtype=np.uint8)]


class SegDataset(Dataset):
    """A list of (image, label) files with a label format, a transform and a seed.

    ``__getitem__`` accepts an index or an ``(epoch, index)`` pair: ``set_epoch`` updates the copy in this process,
    while the pair form reaches persistent DataLoader workers too, which hold their own copies of the dataset.
    """

    ignore_index = IGNORE_INDEX

    def __init__(self, samples: Sequence[Sample], num_classes: int, class_names: Sequence[str],
                 palette: Sequence[Sequence[int]], label_spec: LabelSpec, transform=None, seed: int = 0,
                 name: str = "dataset"):
        if len(class_names) != num_classes or len(palette) != num_classes:
            raise ValueError("%s: %d classes but %d class names and %d palette colours; expected one of each per class"
                             % (name, num_classes, len(class_names), len(palette)))
        if seed < 0:
            raise ValueError("seed must be >= 0, got %d" % seed)
        self.samples: List[Sample] = list(samples)
        self.num_classes = int(num_classes)
        self.class_names = list(class_names)
        self.palette = [tuple(int(c) for c in colour) for colour in palette]
        self.label_spec = label_spec
        self.transform = transform if transform is not None else EvalTransform()
        self.seed = int(seed)
        self.epoch = 0
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Called by the sampler each epoch; augmentation of index i depends only on (seed, epoch, i)."""
        self.epoch = int(epoch)

    def augmentation_rng(self, epoch: int, index: int) -> np.random.Generator:
        return sample_rng(self.seed, epoch, index)

    def sample_name(self, index: int) -> str:
        return os.path.splitext(os.path.basename(self.samples[index].image))[0]

    def load(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        """Untransformed (BGR image, train-id label); raises DatasetError for a bad file even without validation."""
        sample = self.samples[index]
        image = read_image(sample.image)
        if sample.label is None:  # scored nowhere: evaluation counts no pixel of it
            return image, np.full(image.shape[:2], IGNORE_INDEX, dtype=np.uint8)
        raw = read_label(sample.label)
        problem = label_value_problem(raw, self.label_spec, sample.label)
        if problem:
            raise DatasetError([problem])
        if image.shape[:2] != raw.shape:
            raise DatasetError(["label %s is %dx%d but image %s is %dx%d (HxW); expected equal sizes"
                                % (sample.label, raw.shape[0], raw.shape[1], sample.image, image.shape[0],
                                   image.shape[1])])
        return image, self.label_spec.map(raw)

    def __getitem__(self, key: Union[int, Tuple[int, int]]) -> Dict[str, Union[torch.Tensor, str]]:
        epoch, index = (key if isinstance(key, tuple) else (self.epoch, key))
        index = int(index)
        if index < 0:
            index += len(self)
        image, label = self.load(index)
        image_chw, label_hw = self.transform(image, label, self.augmentation_rng(epoch, index))
        return {"image": image_chw, "label": label_hw, "name": self.sample_name(index)}

    def validate(self, level: str = "full", workers: Optional[int] = None, max_report: int = 5) -> int:
        """Checks every pair (see ``check_samples``); returns how many were checked."""
        return check_samples(self.samples, self.label_spec, level=level, workers=workers, max_report=max_report,
                             what=self.name)


def write_sample_list(dataset_or_samples, path: str, root: Optional[str] = None) -> int:
    """Writes ``image label`` lines (the list-file format), relative to ``root`` when given, else absolute.

    Written to a temp file then renamed, so a reader never sees half a list. Returns the number of lines.
    """
    samples = getattr(dataset_or_samples, "samples", dataset_or_samples)
    if len(samples) == 0:
        raise DatasetError(["%s has no file samples to write to %s (synthetic datasets live in memory)"
                            % (getattr(dataset_or_samples, "name", "dataset"), path)])
    lines = []
    for sample in samples:
        if sample.label is None:
            raise DatasetError(["image %s has no label, and the list format pairs every image with one; list a "
                                "labelled split" % sample.image])
        pair = [os.path.relpath(p, root) if root is not None else os.path.abspath(p) for p in sample]
        if any(len(p.split()) != 1 for p in pair):
            raise DatasetError(["path %r contains whitespace; expected paths the space-separated list format can hold"
                                % next(p for p in pair if len(p.split()) != 1)])
        lines.append("%s %s\n" % tuple(pair))
    atomic_write_text(path, "".join(lines))
    return len(lines)
