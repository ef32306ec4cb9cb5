"""Cityscapes benchmark-server files: labelIds PNGs named for the server and their zip; cityscapesScripts' own
evaluation of them gives our mIoU; a test split without labels gets files and no score; two ranks write each image
once; every published file has the mode open() gives under the umask."""
import glob
import importlib
import json
import os
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from modes import UMASKS, umask, wrong_modes
from runner import run_cli

from hmkd.config import config_from_dict
from hmkd.data import EvalTransform
from hmkd.data.cityscapes import EVAL_LABEL_IDS, train_id_to_label_id
from hmkd.engine.stage import run_eval_stage
from hmkd.evaluation import predict_logits, server_files
from hmkd.evaluation.record import EvalRecord
from hmkd.models import build_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
worker = importlib.import_module("server_files_worker")   # by module name, so spawned children can unpickle it

HEIGHT, WIDTH = 64, 128
VAL = {"frankfurt": 2, "lindau": 2}
TEST = {"berlin": 2, "bielefeld": 1}


def stems(cities):
    return ["%s_%06d_%06d" % (city, 7 * i, 19 + i) for city, count in sorted(cities.items()) for i in range(count)]


def blocky_image(rng):
    """16x16 blocks of random colours: a random model then predicts several classes, in regions."""
    blocks = rng.integers(0, 256, size=(HEIGHT // 16, WIDTH // 16, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)


def write_png(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, array), path


def write_images(root, split, cities, seed=0):
    rng = np.random.default_rng(seed)
    paths = {}
    for stem in stems(cities):
        paths[stem] = os.path.join(root, "leftImg8bit", split, stem.split("_")[0], stem + "_leftImg8bit.png")
        write_png(paths[stem], blocky_image(rng))
    return paths


def label_path(root, split, stem):
    return os.path.join(root, "gtFine", split, stem.split("_")[0], stem + "_gtFine_labelIds.png")


def random_model_file(path):
    """deeplabv3_tiny, 19 classes, seeded, its classifier sharpened so predictions vary from region to region."""
    torch.manual_seed(0)
    model = build_model("deeplabv3_tiny", 19).eval()
    with torch.no_grad():
        model.decode_head.classifier.bias.zero_()
        model.decode_head.classifier.weight.mul_(50)
    torch.save({"model": model.state_dict()}, path)
    return model


def config(root, split="val", **eval_keys):
    return {"model": {"name": "deeplabv3_tiny"}, "data": {"name": "cityscapes", "root": root},
            "train": {"device": "cpu", "num_workers": 0}, "eval": dict(split=split, num_visualize=1, **eval_keys)}


@pytest.fixture
def val_tree(tmp_path):
    """A val split (2 cities x 2 images, 64x128) whose labels half agree with the model's predictions and half are
    random labelIds 0..33 (evaluated and ignored ones), except one class the model never predicts: absent from both,
    its IoU is undefined. Returns the root and the model's weights file."""
    root, weights = str(tmp_path / "cityscapes"), str(tmp_path / "weights.pth")
    model = random_model_file(weights)
    preds = {}
    for stem, image_path in write_images(root, "val", VAL).items():
        image, _ = EvalTransform()(cv2.imread(image_path), np.zeros((HEIGHT, WIDTH), np.uint8))
        with torch.no_grad():
            preds[stem] = predict_logits(model, image[None], mode="whole").argmax(1)[0].numpy().astype(np.uint8)
    lut = train_id_to_label_id()
    absent = lut[min(set(range(19)) - set(np.unique(np.stack(list(preds.values())))))]
    drawn = np.array([i for i in range(34) if i != absent])
    rng = np.random.default_rng(1)
    for stem, pred in preds.items():
        label = np.where(rng.random(pred.shape) < 0.5, lut[pred], rng.choice(drawn, pred.shape))
        write_png(label_path(root, "val", stem), label.astype(np.uint8))
    return root, weights


def cityscapes_scripts_eval(root, server_dir):
    """cityscapesScripts' evalPixelLevelSemanticLabeling on our files, found by its own getPrediction rule."""
    evaluation = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
    args = evaluation.args
    args.predictionPath, args.predictionWalk = server_dir, None
    args.evalInstLevelScore = False   # iIoU needs gtFine instanceIds files; the class IoU does not
    args.JSONOutput, args.quiet = False, True
    ground_truth = sorted(glob.glob(os.path.join(root, "gtFine", "val", "*", "*_gtFine_labelIds.png")))
    predictions = [evaluation.getPrediction(args, gt) for gt in ground_truth]
    return evaluation.evaluateImgLists(predictions, ground_truth, args), predictions


def test_train_ids_map_to_the_label_ids_of_cityscapes_scripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    lut = train_id_to_label_id()
    for train_id in range(19):
        assert lut[train_id] == labels.trainId2label[train_id].id, train_id
    assert sorted(l.id for l in labels.labels if not l.ignoreInEval and l.id >= 0) == sorted(EVAL_LABEL_IDS)


def test_official_evaluation_of_the_server_files_gives_our_miou(val_tree, tmp_path):
    pytest.importorskip("cityscapesscripts")
    root, weights = val_tree
    config_path, run_dir = tmp_path / "eval.yaml", tmp_path / "run"
    config_path.write_text(yaml.safe_dump(config(root)))
    done = run_cli("eval", str(config_path), "--checkpoint", weights, "--run-dir", str(run_dir), "--server-files")
    assert done.returncode == 0, done.stderr
    assert "server files: %s" % (run_dir / "server.zip") in done.stdout

    record = EvalRecord.read(str(run_dir / "eval.json"))
    names = [stem + "_leftImg8bit.png" for stem in stems(VAL)]
    assert sorted(os.listdir(str(run_dir / "server"))) == names
    with zipfile.ZipFile(str(run_dir / "server.zip")) as archive:
        assert archive.namelist() == names
        for name in names:
            assert archive.read(name) == (run_dir / "server" / name).read_bytes()
    assert record.server_files == str(run_dir / "server.zip") and record.not_scored is None
    assert json.loads((run_dir / "DONE").read_text())["server_files"] == record.server_files

    result, predictions = cityscapes_scripts_eval(root, str(run_dir / "server"))
    assert [os.path.basename(p) for p in predictions] == names
    ours = {name: scores["iou"] for name, scores in record.per_class.items()}
    theirs = {name: result["classScores"][name] for name in ours}
    assert sum(v is None for v in ours.values()) >= 1 and sum(v == 0 for v in ours.values()) >= 1   # both cases seen
    assert sum(0 < v < 1 for v in ours.values() if v is not None) >= 5
    for name in ours:
        assert (ours[name] is None) == np.isnan(theirs[name]), name   # absent classes: NaN there, null here
        if ours[name] is not None:
            assert abs(ours[name] - theirs[name]) < 1e-12, name
    assert abs(record.mIoU - result["averageScoreClasses"]) < 1e-12
    label_ids = cv2.imread(predictions[0], cv2.IMREAD_UNCHANGED)
    assert label_ids.shape == (HEIGHT, WIDTH) and set(np.unique(label_ids)) <= set(EVAL_LABEL_IDS)


@pytest.mark.parametrize("labels", ["none", "official_zeros"])
def test_a_test_split_gets_server_files_and_no_score(tmp_path, labels):
    root, weights = str(tmp_path / "cityscapes"), str(tmp_path / "weights.pth")
    random_model_file(weights)
    write_images(root, "test", TEST)
    if labels == "official_zeros":   # the official test download: labelIds 0 (unlabeled) everywhere
        for stem in stems(TEST):
            write_png(label_path(root, "test", stem), np.zeros((HEIGHT, WIDTH), np.uint8))
    run_dir = str(tmp_path / "run")
    result = run_eval_stage(config_from_dict(config(root, split="test", server_files=True)), run_dir, weights)

    record = EvalRecord.read(os.path.join(run_dir, "eval.json"))
    assert record.mIoU is None and record.aAcc is None and record.num_pixels == 0 and record.num_images == 3
    assert "none of the 3 images has a labelled pixel" in record.not_scored
    assert result["mIoU"] is None and result["server_files"] == os.path.join(run_dir, "server.zip")
    with zipfile.ZipFile(result["server_files"]) as archive:
        assert archive.namelist() == [stem + "_leftImg8bit.png" for stem in stems(TEST)]
        for name in archive.namelist():
            label_ids = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_UNCHANGED)
            assert label_ids.shape == (HEIGHT, WIDTH) and set(np.unique(label_ids)) <= set(EVAL_LABEL_IDS)


@pytest.mark.parametrize("mask", UMASKS)
def test_the_server_zip_and_its_run_directory_get_the_modes_open_gives(tmp_path, mask):
    """What is uploaded (server.zip), its PNGs and the eval run directory: 0666 / 0777 less the umask."""
    root, weights = str(tmp_path / "cityscapes"), str(tmp_path / "weights.pth")
    random_model_file(weights)
    write_images(root, "test", {"berlin": 1})
    run_dir = str(tmp_path / "run")
    with umask(mask):
        result = run_eval_stage(config_from_dict(config(root, split="test", server_files=True)), run_dir, weights)
    assert result["server_files"] == os.path.join(run_dir, "server.zip") and os.path.isfile(result["server_files"])
    assert wrong_modes(run_dir, mask) == {}


def test_a_failed_zip_publishes_neither_zip_nor_done(tmp_path, monkeypatch):
    root, weights = str(tmp_path / "cityscapes"), str(tmp_path / "weights.pth")
    random_model_file(weights)
    write_images(root, "test", TEST)

    class BrokenZip(zipfile.ZipFile):
        def write(self, *args, **kwargs):
            super().write(*args, **kwargs)
            raise OSError("disk gone")

    monkeypatch.setattr(server_files.zipfile, "ZipFile", BrokenZip)
    run_dir = tmp_path / "run"
    with pytest.raises(OSError, match="disk gone"):
        run_eval_stage(config_from_dict(config(root, split="test", server_files=True)), str(run_dir), weights)
    assert sorted(os.listdir(str(run_dir))) == ["plots", "server"]   # no server.zip nor its temp file, no eval.json,
    assert len(os.listdir(str(run_dir / "server"))) == 3                  # no DONE; the images are all there


def test_server_files_of_another_dataset_are_one_line_before_anything_runs(tmp_path):
    config_path = tmp_path / "eval.yaml"
    cfg = config("unused", server_files=True)
    cfg["data"] = {"name": "synthetic", "num_classes": 19}
    config_path.write_text(yaml.safe_dump(cfg))
    done = run_cli("eval", str(config_path), "--checkpoint", str(tmp_path / "none.pth"), "--run-dir",
                   str(tmp_path / "run"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "hmkd eval: error: %s: eval.server_files writes Cityscapes benchmark-server files, but data.name is "
        "'synthetic'; set eval.server_files=false or evaluate a Cityscapes split" % config_path]


def test_two_ranks_write_each_image_once_and_equal_one_process(val_tree, tmp_path):
    root, weights = val_tree
    single = worker.evaluate_into(root, weights, str(tmp_path / "single"), 0, 1)
    mp.spawn(worker.run_rank, args=(2, root, weights, str(tmp_path / "pg_init"), str(tmp_path / "ranks")), nprocs=2,
             join=True)
    ranks = [torch.load(str(tmp_path / "ranks" / ("rank%d.pt" % r))) for r in range(2)]

    names = [stem + "_leftImg8bit.png" for stem in stems(VAL)]
    assert ranks[0]["written"] == names[0::2] and ranks[1]["written"] == names[1::2]   # disjoint, nothing lost
    assert ranks[0]["zip"] == str(tmp_path / "ranks" / "server.zip") and ranks[1]["zip"] is None
    for rank in ranks:
        assert rank["metrics"]["confusion_matrix"] == single["metrics"]["confusion_matrix"]
    with zipfile.ZipFile(ranks[0]["zip"]) as archive, zipfile.ZipFile(single["zip"]) as expected:
        assert archive.namelist() == expected.namelist() == names
        for name in names:
            assert archive.read(name) == expected.read(name), name
