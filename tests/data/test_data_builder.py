import warnings

import pytest

from hmkd.data import (CamVidDataset, CityscapesDataset, DataConfig, EvalTransform, ListDataset, SyntheticDataset,
                       TrainTransform, build_dataset, write_sample_list)


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="data.name must be one of cityscapes, camvid, list, synthetic, got 'ade'"):
        build_dataset({"name": "ade"})


def test_unknown_key_and_ignored_key():
    with pytest.raises(ValueError, match=r"unknown config key 'data\.crop'; did you mean 'data\.crop_size'\? "
                                         r"valid keys here: class_names, crop_size"):
        build_dataset({"name": "synthetic", "crop": [8, 8]})
    with pytest.raises(ValueError, match=r"config key 'data\.num_classes' must be an integer, got 'five'"):
        build_dataset({"name": "synthetic", "num_classes": "five"})
    with pytest.warns(UserWarning, match="data keys label_type, root are ignored for name=synthetic"):
        DataConfig.from_dict({"name": "synthetic", "root": "/x", "label_type": "labelIds"})
    with pytest.raises(ValueError, match="data.num_classes must be set for name=list"):
        DataConfig.from_dict({"name": "list", "train_list": "t.txt"})
    with pytest.raises(ValueError, match="data.crop_size must be"):
        DataConfig.from_dict({"name": "synthetic", "crop_size": [8]})
    assert DataConfig.from_dict({"name": "synthetic", "validate": True}).validate == "full"


def test_cityscapes_train_and_val(make_cityscapes):
    cfg = {"name": "cityscapes", "root": make_cityscapes(), "crop_size": [8, 12], "normalize": "bgr_mean",
           "scale_range": [0.75, 1.25], "scale_step": 0.25}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train = build_dataset(cfg, split="train", seed=5)
    assert isinstance(train, CityscapesDataset) and isinstance(train.transform, TrainTransform)
    assert train.seed == 5 and train.transform.scales.tolist() == [0.75, 1.0, 1.25]
    assert train.transform.normalize.mode == "bgr_mean" and train[0]["image"].shape == (3, 8, 12)
    val = build_dataset(cfg, split="val")
    assert isinstance(val.transform, EvalTransform) and len(val) == 1 and val[0]["image"].shape == (3, 16, 32)
    assert build_dataset(cfg, split="train", train=False)[0]["image"].shape == (3, 16, 32)


def test_camvid_default_crop_and_split_folders(make_camvid):
    root = make_camvid(splits={"trainval": 2, "test": 1})
    ds = build_dataset({"name": "camvid", "root": root, "train_split": "trainval"}, "train")
    assert isinstance(ds, CamVidDataset) and len(ds) == 2 and (ds.transform.crop_h, ds.transform.crop_w) == (360, 480)
    assert len(build_dataset({"name": "camvid", "root": root}, "test")) == 1


def test_list_and_synthetic(make_camvid, tmp_path):
    root = make_camvid(splits={"train": 2})
    write_sample_list(CamVidDataset(root, "train"), str(tmp_path / "train.txt"), root=root)
    cfg = {"name": "list", "root": root, "train_list": str(tmp_path / "train.txt"), "num_classes": 12,
           "class_names": ["c%d" % k for k in range(12)], "crop_size": [8, 8]}
    ds = build_dataset(cfg, "train", validate="full")
    assert isinstance(ds, ListDataset) and ds.class_names[11] == "c11" and ds[1]["label"].shape == (8, 8)
    with pytest.raises(ValueError, match="data.val_list is required"):
        build_dataset(cfg, "val")

    syn = {"name": "synthetic", "num_classes": 3, "image_size": [16, 24], "num_train": 5, "num_val": 2}
    train, val = build_dataset(syn, "train", seed=1), build_dataset(syn, "val")
    assert isinstance(train, SyntheticDataset) and (len(train), len(val)) == (5, 2) and train.num_classes == 3
    assert train[0]["image"].shape == (3, 16, 24) and val.split == "val"
