"""Segmentation datasets (Cityscapes, CamVid, list files, synthetic, unlabelled images), checks and transforms.

Usage:
    from hmkd.data import build_dataset
    train_set = build_dataset({"name": "cityscapes", "root": "/data/cityscapes"}, split="train", seed=0)
"""
from hmkd.data.base import IGNORE_INDEX, Sample, SegDataset, colorize, sample_rng, write_sample_list
from hmkd.data.builder import DATASET_NAMES, DataConfig, build_dataset, build_unlabeled
from hmkd.data.camvid import CamVidDataset, camvid_samples
from hmkd.data.cityscapes import CityscapesDataset, cityscapes_samples, label_id_to_train_id
from hmkd.data.files import DatasetError, read_image, read_label
from hmkd.data.listfile import ListDataset, read_sample_list
from hmkd.data.synthetic import SyntheticDataset, generate_scene
from hmkd.data.renormalize import Renormalize, renormalizer
from hmkd.data.transforms import NORMALIZATIONS, EvalTransform, Normalize, TrainTransform
from hmkd.data.unlabeled import MixedDataset, UnlabeledImages, unlabeled_paths, with_unlabeled
from hmkd.data.validation import LabelSpec, check_samples

__all__ = [
    "IGNORE_INDEX", "DATASET_NAMES", "CamVidDataset", "CityscapesDataset", "DataConfig", "DatasetError",
    "EvalTransform", "LabelSpec", "ListDataset", "MixedDataset", "NORMALIZATIONS", "Normalize", "Renormalize",
    "Sample", "SegDataset", "SyntheticDataset", "TrainTransform", "UnlabeledImages", "build_dataset",
    "build_unlabeled", "camvid_samples", "check_samples", "cityscapes_samples", "colorize", "generate_scene",
    "label_id_to_train_id", "read_image", "read_label", "read_sample_list", "renormalizer", "sample_rng",
    "unlabeled_paths", "with_unlabeled", "write_sample_list",
]
