import os

import pytest

from hmkd.data import CityscapesDataset, DatasetError, ListDataset, read_sample_list, write_sample_list


def test_written_list_reads_back_to_the_same_samples(make_cityscapes, tmp_path):
    root = make_cityscapes()
    ds = CityscapesDataset(root, "train")
    relative = str(tmp_path / "lists" / "train_rel.txt")
    assert write_sample_list(ds, relative, root=root) == 4
    with open(relative) as f:
        first = f.readline().split()
    assert first == ["leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png",
                     "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"]
    assert read_sample_list(relative, root=root) == ds.samples

    absolute = str(tmp_path / "train_abs.txt")
    write_sample_list(ds.samples, absolute)
    assert read_sample_list(absolute) == ds.samples


def test_list_dataset_labels_are_train_ids(make_camvid, tmp_path):
    root = make_camvid(values=(0, 3, 255, 10))
    with open(str(tmp_path / "val.txt"), "w") as f:
        f.write("# comment\n\nval/0001TP_000000.png valannot/0001TP_000000.png\n")
    ds = ListDataset(str(tmp_path / "val.txt"), num_classes=11, root=root)
    assert len(ds) == 1 and ds.class_names[3] == "class_3" and len(ds.palette) == 11
    assert ds[0]["label"].flatten()[:4].tolist() == [0, 3, 255, 10]
    ds.validate("full")
    # With 4 classes, value 10 is out of range: validation names the file, the value and the expectation.
    with pytest.raises(DatasetError) as err:
        ListDataset(str(tmp_path / "val.txt"), num_classes=4, root=root).validate("full")
    assert "0001TP_000000.png has value 10 at 128 pixels; expected 0..3 or 255 (ignore)" in str(err.value)


def test_malformed_line_names_file_and_line(tmp_path):
    path = str(tmp_path / "bad.txt")
    with open(path, "w") as f:
        f.write("a.png a_label.png\nonly_one_field.png\n")
    with pytest.raises(DatasetError) as err:
        ListDataset(path, num_classes=3)
    assert "%s line 2 has 1 fields" % path in str(err.value) and "expected 'image_path label_path'" in str(err.value)


def test_missing_list_file(tmp_path):
    with pytest.raises(DatasetError, match="list .*nope.txt does not exist; expected"):
        ListDataset(str(tmp_path / "nope.txt"), num_classes=3)


def test_synthetic_dataset_has_no_list_to_write(tmp_path):
    from hmkd.data import SyntheticDataset

    with pytest.raises(DatasetError, match="no file samples"):
        write_sample_list(SyntheticDataset(length=2), str(tmp_path / "x.txt"))
    assert not os.path.exists(str(tmp_path / "x.txt"))
