import os

import pytest

from hmkd.data import CamVidDataset, DatasetError
from hmkd.data.camvid import CLASS_NAMES, PALETTE


def test_pairs_by_file_name_and_maps_void_to_ignore(make_camvid):
    root = make_camvid()
    ds = CamVidDataset(root, "train")
    assert len(ds) == 3 and ds.num_classes == 11 and len(CLASS_NAMES) == len(PALETTE) == 11
    for sample in ds.samples:
        assert os.path.dirname(sample.label) == os.path.join(root, "trainannot")
        assert os.path.basename(sample.label) == os.path.basename(sample.image)
    labels = ds[0]["label"].flatten()[:12].tolist()
    assert labels == list(range(11)) + [255]
    assert ds.class_names[0] == "Sky" and ds.class_names[10] == "Bicyclist"
    ds.validate("full")


def test_missing_annotation_folder_names_the_layout(make_camvid):
    root = make_camvid(splits={"train": 1})
    with pytest.raises(DatasetError) as err:
        CamVidDataset(root, "val")
    message = str(err.value)
    assert os.path.join(root, "val") in message and "valannot/" in message and "expected" in message
