"""Images without labels for distillation (``data.unlabeled``), and the dataset that serves them beside labelled ones.

Usage:
    paths = unlabeled_paths("/data/cityscapes/leftImg8bit/train_extra")   # a folder, a .txt/.lst list, or
    paths = unlabeled_paths("cityscapes:train_extra", root="/data/cityscapes")   # <root>/leftImg8bit/train_extra
    images = UnlabeledImages(paths, like=train_set, transform=train_set.transform, seed=0)
    mixed = with_unlabeled(train_set, images)   # keys (epoch, i): i < len(train_set) labelled, the rest unlabelled

Each image's label is IGNORE_INDEX at the image's size, so the training transform (scale, crop, flip, normalise)
applies unchanged and the samples collate with labelled ones: cross-entropy then counts the labelled pixels only
while the label-free distillation terms read every image. An unlabelled image's augmentation is keyed by its own
stream's (epoch, index) and salted, so it never repeats the draws of the labelled image with the same key.
"""
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from hmkd.data.base import Sample, SegDataset, sample_rng

UNLABELED_EXTENSIONS = (".png", ".jpg", ".jpeg")
LIST_EXTENSIONS = (".txt", ".lst")
CITYSCAPES_PREFIX = "cityscapes:"
_AUGMENTATION_SALT = 1  # the fourth word of an unlabelled image's sample_rng key


def resolve_source(source: str, root: str = "") -> str:
    """``cityscapes:<split>`` -> ``<root>/leftImg8bit/<split>`` (train_extra: the 20k coarse-only frames); any
    other value is a path, returned as given."""
    if not source.startswith(CITYSCAPES_PREFIX):
        return source
    split = source[len(CITYSCAPES_PREFIX):]
    if not root or not split:
        raise ValueError("data.unlabeled=%s needs data.root (the Cityscapes folder) and a split after the colon, "
                         "e.g. cityscapes:train_extra" % source)
    return os.path.join(root, "leftImg8bit", split)


def folder_images(folder: str, extensions: Sequence[str] = UNLABELED_EXTENSIONS) -> List[str]:
    """Every .png/.jpg/.jpeg (``extensions``, lower case) under ``folder`` (any depth, symlinked folders followed
    once), sorted: a fixed order. ``hmkd predict`` searches its SOURCE folders with it too."""
    found, seen = [], set()
    for directory, subdirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:  # a symlink loop, or a folder linked twice
            subdirs[:] = []
            continue
        seen.add(real)
        subdirs.sort()  # the walk's order decides which of two links to one folder names its images
        found += [os.path.join(directory, n) for n in names if n.lower().endswith(tuple(extensions))]
    return sorted(found)


def listed_images(list_path: str, what: str = "data.unlabeled list") -> List[str]:
    """One image path per line (relative ones against the list's folder; blank lines and ``#`` comments skipped);
    a listed file that does not exist is an error naming it, as is a list that names none (``what``: the list's
    role in those errors)."""
    base = os.path.dirname(os.path.abspath(list_path))
    paths, missing = [], []
    with open(list_path) as handle:
        for number, line in enumerate(handle, 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            path = os.path.normpath(os.path.join(base, entry))
            paths.append(path)
            if not os.path.isfile(path):
                missing.append((number, path))
    if missing:
        number, path = missing[0]
        more = " (and %d more missing)" % (len(missing) - 1) if len(missing) > 1 else ""
        raise FileNotFoundError("%s %s line %d names %s, which does not exist%s; fix the list or the files"
                                % (what, list_path, number, path, more))
    if not paths:
        raise ValueError("%s %s names no image; expected one image path per line" % (what, list_path))
    return paths


def unlabeled_paths(source: str, root: str = "") -> List[str]:
    """The image files ``data.unlabeled`` names: a folder searched recursively, or a .txt/.lst list of paths."""
    path = resolve_source(source, root)
    if os.path.isdir(path):
        images = folder_images(path)
        if not images:
            raise ValueError("data.unlabeled folder %s holds no %s image (searched recursively); point it at the "
                             "images' folder" % (path, "/".join(UNLABELED_EXTENSIONS)))
        return images
    if not os.path.exists(path):
        raise FileNotFoundError("data.unlabeled: %s does not exist; expected a folder of images or a %s list of "
                                "image paths" % (path, "/".join(LIST_EXTENSIONS)))
    if not path.lower().endswith(LIST_EXTENSIONS):
        raise ValueError("data.unlabeled: %s is a file but not a %s list; expected a folder of images or a list of "
                         "image paths" % (path, "/".join(LIST_EXTENSIONS)))
    return listed_images(path)


class UnlabeledImages(SegDataset):
    """Image files without labels, in the label format of ``like`` (the labelled set they are trained beside)."""

    def __init__(self, paths: Sequence[str], like: SegDataset, transform=None, seed: int = 0,
                 name: str = "data.unlabeled"):
        super().__init__([Sample(p, None) for p in paths], like.num_classes, like.class_names, like.palette,
                         like.label_spec, transform=transform, seed=seed, name=name)

    def augmentation_rng(self, epoch: int, index: int) -> np.random.Generator:
        return sample_rng(self.seed, epoch, index, _AUGMENTATION_SALT)


class MixedDataset(Dataset):
    """Labelled keys ``(epoch, i)`` for i < len(labelled), unlabelled ones offset by len(labelled): one dataset for
    one DataLoader, each half keyed by its own stream's epoch (hmkd.engine.sampler.ResumableSampler)."""

    def __init__(self, labelled: SegDataset, unlabelled: SegDataset):
        self.labelled, self.unlabelled = labelled, unlabelled

    def __len__(self) -> int:
        return len(self.labelled) + len(self.unlabelled)

    def __getitem__(self, key: Tuple[int, int]) -> Dict[str, Union[torch.Tensor, str]]:
        epoch, index = key
        if index < len(self.labelled):
            return self.labelled[(epoch, index)]
        return self.unlabelled[(epoch, index - len(self.labelled))]


def with_unlabeled(labelled: SegDataset, unlabelled: Optional[SegDataset]) -> Dataset:
    """The training loader's dataset: ``labelled`` itself without unlabelled images, so such runs stay unchanged."""
    return labelled if unlabelled is None else MixedDataset(labelled, unlabelled)
