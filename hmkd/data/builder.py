"""Builds a dataset from the flat ``data:`` section of an experiment config.

Usage:
    train_set = build_dataset(cfg["data"], split="train", train=True, seed=cfg["seed"])
    unlabeled_set = build_unlabeled(cfg["data"], train_set)     # None without data.unlabeled
    val_set = build_dataset(cfg["data"], split="val")

Keys (all optional except ``name``; a key that the chosen dataset does not use is warned about):
    name              cityscapes | camvid | list | synthetic
    root              dataset root (cityscapes, camvid); for list: base of relative paths (default: list's folder)
    train_split       folder name of the training split (default train); val_split (val), test_split (test);
                      a Cityscapes test split may come without gtFine/ (its images are then unlabelled)
    label_type        cityscapes only: labelIds (default, mapped to train ids) | labelTrainIds
    train_list        list only: 'image_path label_path' file per split; val_list, test_list
    num_classes       list (required), synthetic (default 5)
    class_names       list only: one name per class (default class_0, class_1, ...)
    image_size        synthetic: [h, w] of the generated scenes (default [64, 96])
    num_train         synthetic: scenes in the train split (default 64); num_val: in val and test (default 16)
    data_seed         synthetic: seed of the scene content, separate from the training seed (default 0)
    scene             synthetic: stripes (default; class from colour and texture) | context (class needs the
                      region's outline; the distillation benchmark's task, hmkd.data.context_scenes)
    crop_size         [h, w] training crop (default cityscapes [512, 1024], camvid [360, 480], synthetic image_size;
                      required for list)
    scale_range       [lo, hi] random scale (default [0.5, 2.0]); scale_step 0.1 (0 = continuous)
    flip              random horizontal flip with p=0.5 (default true)
    normalize         imagenet_rgb (default; RGB, ImageNet mean/std) | bgr_mean (CIRKD: BGR, mean only): the
                      normalisation of a model whose ``normalize: auto`` finds no weights file that says; a run
                      normalises its data for the student's resolved ``model.normalize`` (hmkd.config.schema)
    validate          none | quick (default: files exist and pair up) | full (decode every file); true = full
    validate_workers  threads for full validation (default 8)
    unlabeled         images without labels trained beside the labelled split (default "": none): a folder searched
                      recursively for .png/.jpg/.jpeg (sorted), a .txt/.lst list of image paths (relative ones
                      against the list's folder), or cityscapes:train_extra (<root>/leftImg8bit/train_extra). They
                      get all-void labels and the training transform: CE counts labelled pixels only, label-free
                      distillation terms every image (hmkd.data.unlabeled)
    unlabeled_ratio   unlabelled images per labelled one in each batch (default 1.0): a process's batch is
                      train.batch_size labelled + round(unlabeled_ratio * train.batch_size) unlabelled (>= 1)

The section is checked by hmkd.config.typed like every other: an unknown key fails with the closest valid one and
errors carry the full path (``data.crop_size must be ...``).
"""
import dataclasses
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

from hmkd.config.typed import from_dict
from hmkd.data.base import SegDataset
from hmkd.data.camvid import CamVidDataset
from hmkd.data.cityscapes import LABEL_TYPES, CityscapesDataset
from hmkd.data.listfile import ListDataset
from hmkd.data.synthetic import SyntheticDataset
from hmkd.data.transforms import NORMALIZATIONS, EvalTransform, TrainTransform
from hmkd.data.unlabeled import CITYSCAPES_PREFIX, UnlabeledImages, resolve_source, unlabeled_paths

DATASET_NAMES = ("cityscapes", "camvid", "list", "synthetic")
SPLITS = ("train", "val", "test")
VALIDATE_LEVELS = ("none", "quick", "full")
DEFAULT_CROP = {"cityscapes": [512, 1024], "camvid": [360, 480]}
_COMMON = {"name", "crop_size", "scale_range", "scale_step", "flip", "normalize", "validate", "validate_workers",
           "unlabeled", "unlabeled_ratio"}
_UNLABELED_KEYS = {"unlabeled", "unlabeled_ratio"}
_USES = {
    "cityscapes": _COMMON | {"root", "train_split", "val_split", "test_split", "label_type"},
    "camvid": _COMMON | {"root", "train_split", "val_split", "test_split"},
    "list": _COMMON | {"root", "train_list", "val_list", "test_list", "num_classes", "class_names"},
    "synthetic": _COMMON | {"num_classes", "image_size", "num_train", "num_val", "data_seed", "scene"},
}


@dataclasses.dataclass
class DataConfig:
    """The ``data:`` section, checked when built so a typo fails before any file is touched."""

    name: str
    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    label_type: str = "labelIds"
    train_list: str = ""
    val_list: str = ""
    test_list: str = ""
    num_classes: Optional[int] = None
    class_names: Optional[List[str]] = None
    image_size: List[int] = dataclasses.field(default_factory=lambda: [64, 96])
    num_train: int = 64
    num_val: int = 16
    data_seed: int = 0
    scene: str = "stripes"
    crop_size: Optional[List[int]] = None
    scale_range: List[float] = dataclasses.field(default_factory=lambda: [0.5, 2.0])
    scale_step: float = 0.1
    flip: bool = True
    normalize: str = "imagenet_rgb"
    validate: Union[str, bool] = "quick"
    validate_workers: int = 8
    unlabeled: str = ""
    unlabeled_ratio: float = 1.0

    def __post_init__(self):
        def need(ok: bool, field: str, expected: str) -> None:
            if not ok:
                raise ValueError("%s must be %s, got %r" % (field, expected, getattr(self, field)))

        if isinstance(self.validate, bool):  # YAML's `validate: true` means the thorough check
            self.validate = "full" if self.validate else "none"
        need(self.name in DATASET_NAMES, "name", "one of " + ", ".join(DATASET_NAMES))
        need(self.label_type in LABEL_TYPES, "label_type", "one of " + ", ".join(LABEL_TYPES))
        need(self.normalize in NORMALIZATIONS, "normalize", "one of " + ", ".join(sorted(NORMALIZATIONS)))
        need(self.validate in VALIDATE_LEVELS, "validate", "one of " + ", ".join(VALIDATE_LEVELS))
        need(self.crop_size is None or (len(self.crop_size) == 2 and min(self.crop_size) > 0), "crop_size",
             "[h, w] with positive entries")
        need(len(self.image_size) == 2 and min(self.image_size) >= 8, "image_size", "[h, w] with entries >= 8")
        need(len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1], "scale_range",
             "[lo, hi] with 0 < lo <= hi")
        need(self.scale_step >= 0, "scale_step", ">= 0 (0 = continuous)")
        need(self.num_classes is None or 0 < self.num_classes < 255, "num_classes", "in 1..254")
        need(self.class_names is None or self.num_classes is None or len(self.class_names) == self.num_classes,
             "class_names", "one name per class (num_classes=%r)" % self.num_classes)
        need(self.num_train > 0 and self.num_val > 0 and self.data_seed >= 0 and self.validate_workers > 0,
             "num_train", "positive, with num_val > 0, data_seed >= 0 and validate_workers > 0")
        if self.name == "list":
            need(self.num_classes is not None, "num_classes", "set for name=list")
        if self.name in ("cityscapes", "camvid"):
            need(bool(self.root), "root", "the dataset directory for name=%s" % self.name)
        need(self.unlabeled_ratio > 0, "unlabeled_ratio", "> 0 (unlabelled images per labelled image in a batch)")
        shortcut = self.unlabeled.startswith(CITYSCAPES_PREFIX)
        need(not shortcut or bool(self.root and self.unlabeled[len(CITYSCAPES_PREFIX):]), "unlabeled",
             "a folder, a .txt/.lst list, or cityscapes:<split> (e.g. train_extra) with data.root set")

    def unlabeled_batch(self, batch_size: int) -> int:
        """Unlabelled images per process batch beside ``batch_size`` labelled ones; 0 without data.unlabeled."""
        return int(round(self.unlabeled_ratio * batch_size)) if self.unlabeled else 0

    @classmethod
    def from_dict(cls, data: Dict[str, Any], where: str = "data") -> "DataConfig":
        """hmkd.config.typed.from_dict for this section, for callers holding a plain ``data:`` mapping."""
        return from_dict(cls, data, where)

    def check_given_keys(self, keys: Sequence[str], where: str) -> None:
        """Keys the chosen dataset ignores warn: they are usually typos of another key or a wrong ``name``."""
        ignored = sorted(set(keys) - _USES[self.name])
        if ignored:
            warnings.warn("%s keys %s are ignored for name=%s" % (where or "data", ", ".join(ignored), self.name))
        if "unlabeled_ratio" in keys and not self.unlabeled:
            warnings.warn("%s.unlabeled_ratio is ignored without %s.unlabeled" % (where or "data", where or "data"))

    def to_dict(self) -> Dict[str, Any]:
        """The keys this dataset uses, so a saved config reloads without 'ignored key' warnings."""
        uses = _USES[self.name] - (set() if self.unlabeled else _UNLABELED_KEYS)  # saved configs stay as they were
        return {k: v for k, v in dataclasses.asdict(self).items() if k in uses}


def _validate_level(level: Union[None, bool, str], config: DataConfig) -> str:
    if level is None:
        return config.validate
    if isinstance(level, bool):
        return "full" if level else "none"
    if level not in VALIDATE_LEVELS:
        raise ValueError("validate must be a bool or one of %s, got %r" % (", ".join(VALIDATE_LEVELS), level))
    return level


def build_dataset(cfg: Union[Dict[str, Any], DataConfig], split: str = "train", train: Optional[bool] = None,
                  seed: int = 0, validate: Union[None, bool, str] = None) -> SegDataset:
    """The dataset for ``split`` (train | val | test), with training augmentation when ``train`` (default: split is
    train), validated at ``validate`` level (True = full, False = none, None = the config's ``validate``)."""
    config = cfg if isinstance(cfg, DataConfig) else DataConfig.from_dict(dict(cfg))
    if split not in SPLITS:
        raise ValueError("split must be one of %s, got %r" % (", ".join(SPLITS), split))
    train = split == "train" if train is None else bool(train)
    level = _validate_level(validate, config)
    if train:
        crop = config.crop_size or DEFAULT_CROP.get(config.name)
        if crop is None and config.name == "synthetic":
            crop = config.image_size
        if crop is None:
            raise ValueError("data.crop_size is required for name=%s when training" % config.name)
        transform = TrainTransform(crop, config.scale_range, config.scale_step, config.flip, config.normalize)
    else:
        transform = EvalTransform(config.normalize)

    folder = getattr(config, split + "_split")
    if config.name == "cityscapes":
        dataset = CityscapesDataset(config.root, folder, config.label_type, transform=transform, seed=seed,
                                    labels_optional=split == "test")
    elif config.name == "camvid":
        dataset = CamVidDataset(config.root, folder, transform=transform, seed=seed)
    elif config.name == "list":
        list_path = getattr(config, split + "_list")
        if not list_path:
            raise ValueError("data.%s_list is required for name=list, split=%s" % (split, split))
        dataset = ListDataset(list_path, config.num_classes, root=config.root or None, class_names=config.class_names,
                              transform=transform, seed=seed)
    else:
        length = config.num_train if split == "train" else config.num_val
        dataset = SyntheticDataset(config.num_classes or 5, config.image_size, length, split=split,
                                   data_seed=config.data_seed, transform=transform, seed=seed, scene=config.scene)
    if level != "none":
        dataset.validate(level, workers=config.validate_workers)
    return dataset


def build_unlabeled(cfg: Union[Dict[str, Any], DataConfig], labelled: SegDataset,
                    validate: Union[None, bool, str] = None) -> Optional[UnlabeledImages]:
    """The ``data.unlabeled`` images with ``labelled``'s transform, seed and label format, checked at ``validate``
    level (as build_dataset); None when the config names none."""
    config = cfg if isinstance(cfg, DataConfig) else DataConfig.from_dict(dict(cfg))
    if not config.unlabeled:
        return None
    images = UnlabeledImages(unlabeled_paths(config.unlabeled, config.root), labelled, transform=labelled.transform,
                             seed=labelled.seed, name="data.unlabeled %s" % resolve_source(config.unlabeled,
                                                                                            config.root))
    level = _validate_level(validate, config)
    if level != "none":
        images.validate(level, workers=config.validate_workers)
    return images
