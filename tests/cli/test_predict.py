"""hmkd predict end to end on real files: each output kind against evaluation's predictions of the same images, the
Cityscapes labelIds against ``hmkd eval``'s server files, videos, resume after a SIGKILL, and every bad input as one
line naming it with a non-zero exit status."""
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from predict_files import CLASSES, blocky, write_image
from predict_fixtures import image_folder, run_dir, video_file  # noqa: F401 (fixtures)
from runner import REPO, cli_env

from hmkd.cli.main import main
from hmkd.config import EvalConfig, config_from_dict
from hmkd.data import EvalTransform
from hmkd.data import cityscapes
from hmkd.data.base import colorize, default_palette
from hmkd.data.files import read_image
from hmkd.data.listfile import ListDataset
from hmkd.deploy.formats import FORMATS
from hmkd.deploy.student import StudentLogits
from hmkd.engine.stage import run_eval_stage
from hmkd.evaluation import evaluate, predict_logits
from hmkd.predict.sources import expand_sources


def predict(capsys, *argv):
    code = main(["predict"] + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def evaluation_predictions(model, folder, tmp_path, protocol):
    """What evaluation predicts for every image of ``folder`` (hmkd.evaluation.evaluate, as ``hmkd eval`` runs it,
    on a list dataset of the images with empty labels), and its logits, by output name."""
    inputs = [i for i in expand_sources([folder]) if i.kind == "image"]
    lines = []
    for item in inputs:
        label = str(tmp_path / "labels" / (item.stem.replace("/", "_") + ".png"))
        write_image(label, np.zeros(read_image(item.path).shape[:2], np.uint8))
        lines.append("%s %s" % (item.path, label))
    listing = tmp_path / "eval.txt"
    listing.write_text("\n".join(lines) + "\n")
    dataset = ListDataset(str(listing), len(CLASSES), class_names=list(CLASSES), transform=EvalTransform())
    preds = {}
    evaluate(model, dataset, protocol, on_prediction=lambda index, pred: preds.__setitem__(inputs[index].stem,
                                                                                           pred.numpy()))
    options = {"mode": protocol.mode, "flip": protocol.flip, "crop_size": protocol.crop_size,
               "stride": protocol.stride}
    logits = {item.stem: predict_logits(model, dataset[i]["image"][None], **options)[0] for i, item in
              enumerate(inputs)}
    return preds, logits


def read_png(path):
    return cv2.imread(path, cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("protocol, flags", [
    (EvalConfig(), ["--batch-size", "3"]),
    (EvalConfig(mode="slide", crop_size=[32, 40], stride=[16, 20], flip=True),
     ["--mode", "slide", "--crop-size", "32x40", "--stride", "16x20", "--flip", "--workers", "1"]),
])
def test_every_output_against_evaluation(run_dir, image_folder, video_file, tmp_path, capsys, protocol, flags):
    run, model = run_dir()
    out = tmp_path / "out"
    code, stdout, err = predict(capsys, image_folder, video_file, "--model", run.path, "--out", out, "--outputs",
                                "palette,label,overlay,probs,confidence", "--alpha", "0.4", *flags)
    assert code == 0, err
    assert "predict: 6 images and 1 video with torch deeplabv3_tiny (cpu, fp32; imagenet_rgb" in stdout
    assert "predict: 11/11 images" in stdout   # the plain progress line (not a terminal)
    assert "predicted 11 images (5 of them video frames)" in stdout
    preds, logits = evaluation_predictions(model, image_folder, tmp_path, protocol)
    assert len(preds) == 6 and len(set(np.concatenate([p.ravel() for p in preds.values()]))) == 3
    palette = default_palette(3)
    for stem, pred in preds.items():
        label = read_png(str(out / "label" / (stem + ".png")))
        np.testing.assert_array_equal(label, pred)   # identical labels to evaluation's
        indexed = Image.open(str(out / "palette" / (stem + ".png")))
        assert indexed.mode == "P" and indexed.getpalette()[:9] == [c for colour in palette for c in colour]
        np.testing.assert_array_equal(np.array(indexed), pred)
        image = read_image(os.path.join(image_folder, stem + (".jpg" if stem in ("c", "sub/e") else ".png")))
        expected = 0.6 * image.astype(np.float64) + 0.4 * colorize(pred, palette)[..., ::-1]
        overlay = read_png(str(out / "overlay" / (stem + ".png")))
        assert overlay.shape == image.shape and np.abs(overlay - expected).max() <= 1.0
        probs = np.load(str(out / "probs" / (stem + ".npy")))
        assert probs.dtype == np.float16 and probs.shape == (3,) + pred.shape
        np.testing.assert_allclose(probs, logits[stem].softmax(0).numpy(), atol=2e-3)
        confidence = np.load(str(out / "confidence" / (stem + ".npy")))
        assert confidence.dtype == np.float16 and np.array_equal(confidence, probs.max(axis=0))
    capture = cv2.VideoCapture(video_file)
    for index in range(5):
        ok, frame = capture.read()
        assert ok
        image, _ = EvalTransform()(frame, np.zeros(frame.shape[:2], np.uint8))
        options = {"mode": protocol.mode, "flip": protocol.flip, "crop_size": protocol.crop_size,
                   "stride": protocol.stride}
        expected = predict_logits(model, image[None], **options).argmax(1)[0].numpy()
        np.testing.assert_array_equal(read_png(str(out / "label" / "clip" / ("%06d.png" % index))), expected)
    assert len(os.listdir(str(out / "label" / "clip"))) == 5

    code, stdout, _ = predict(capsys, image_folder, video_file, "--model", run.path, "--out", out, "--outputs",
                              "palette,label,overlay,probs,confidence", *flags)
    assert code == 0 and "predicted 0 images" in stdout and "11 skipped: their outputs exist" in stdout


def test_label_ids_are_the_server_files_of_hmkd_eval(run_dir, tmp_path, capsys):
    run, _ = run_dir(class_names=cityscapes.CLASS_NAMES)
    root = tmp_path / "cityscapes"
    rng = np.random.default_rng(5)
    for stem in ("berlin_000000_000019", "berlin_000001_000019", "bonn_000002_000019"):
        write_image(root / "leftImg8bit" / "test" / stem.split("_")[0] / (stem + "_leftImg8bit.png"),
                    blocky(rng, 32, 64))
    cfg = config_from_dict({"model": {"name": "deeplabv3_tiny"}, "data": {"name": "cityscapes", "root": str(root)},
                            "train": {"device": "cpu", "num_workers": 0},
                            "eval": {"split": "test", "server_files": True, "num_visualize": 0}})
    run_eval_stage(cfg, str(tmp_path / "eval"), run.model)
    server = tmp_path / "eval" / "server"
    out = tmp_path / "out"
    code, stdout, err = predict(capsys, root / "leftImg8bit" / "test", "--model", run.path, "--out", out,
                                "--outputs", "label,palette", "--label-ids")
    assert code == 0, err
    assert "19 classes, the Cityscapes palette" in stdout
    names = sorted(os.listdir(str(server)))
    assert len(names) == 3
    values = set()
    for name in names:
        ours = read_png(str(out / "label" / name.split("_")[0] / name))
        np.testing.assert_array_equal(ours, read_png(str(server / name)))
        values |= set(np.unique(ours))
        indexed = Image.open(str(out / "palette" / name.split("_")[0] / name))
        assert indexed.getpalette()[:57] == [c for colour in cityscapes.PALETTE for c in colour]
    assert len(values) >= 2 and values <= set(cityscapes.EVAL_LABEL_IDS)

    code, _, err = predict(capsys, root, "--model", run_dir()[0].path, "--out", tmp_path / "o2",
                           "--outputs", "label", "--label-ids")
    assert code == 2 and "--label-ids writes Cityscapes labelIds, but the model's 3 classes" in one_line(err)


def test_video_out_writes_one_annotated_video(run_dir, video_file, tmp_path, capsys):
    run, _ = run_dir()
    out = tmp_path / "out"
    code, stdout, err = predict(capsys, video_file, "--model", run.path, "--out", out, "--video-out")
    assert code == 0, err
    assert "-> %s (video)" % out in stdout and "predicted 5 images (5 of them video frames)" in stdout
    assert os.listdir(str(out / "video")) == ["clip.mp4"]
    capture = cv2.VideoCapture(str(out / "video" / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == 5.0 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 5
    ok, frame = capture.read()
    assert ok and frame.shape == (48, 64, 3)
    code, stdout, _ = predict(capsys, video_file, "--model", run.path, "--out", out, "--video-out")
    assert code == 0 and "1 skipped: their outputs exist" in stdout


def visible_files(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder) for d, _, names in os.walk(folder) for n in names)


def test_resume_after_sigkill_mid_folder(run_dir, tmp_path):
    run, _ = run_dir()
    folder = tmp_path / "many"
    rng = np.random.default_rng(7)
    for i in range(40):
        write_image(folder / ("%02d.png" % i), blocky(rng, 160, 224))
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "hmkd", "predict", str(folder), "--model", run.path, "--out", str(out),
            "--outputs", "label,overlay", "--batch-size", "1", "--workers", "1"]
    process = subprocess.Popen(argv, env=cli_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if os.path.isdir(str(out / "overlay")) and len(os.listdir(str(out / "overlay"))) >= 3:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    process.stderr.close()
    written = [f for f in visible_files(str(out)) if not os.path.basename(f).startswith(".")]
    assert 3 <= len(written) < 80, written          # killed mid-folder
    for name in written:                            # every file under its final name is whole
        picture = read_png(str(out / name))
        assert picture is not None and picture.shape[:2] == (160, 224), name

    done = subprocess.run(argv, env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    files = visible_files(str(out))
    assert files == sorted(["label/%02d.png" % i for i in range(40)] + ["overlay/%02d.png" % i for i in range(40)])
    assert "skipped: their outputs exist" in done.stdout   # the killed run's finished images were not redone


def test_bad_images_stop_the_run_or_are_skipped(run_dir, tmp_path, capsys):
    run, _ = run_dir()
    folder = tmp_path / "mixed"
    rng = np.random.default_rng(3)
    for name in ("a.png", "c.png", "e.png"):
        write_image(folder / name, blocky(rng, 24, 32))
    (folder / "b_empty.png").write_bytes(b"")
    (folder / "d_text.jpg").write_text("this is not a picture\n")
    os.symlink(str(folder / "gone.png"), str(folder / "f_dangling.png"))   # a file that went away
    bad = ["b_empty.png", "d_text.jpg", "f_dangling.png"]
    if os.geteuid() != 0:   # root reads any file: there the dangling link is the unreadable one
        write_image(folder / "g_locked.png", blocky(rng, 24, 32))
        os.chmod(str(folder / "g_locked.png"), 0)
        bad.append("g_locked.png")
    out = tmp_path / "out"
    code, _, err = predict(capsys, folder, "--model", run.path, "--out", out, "--outputs", "label")
    assert code == 2
    line = one_line(err)
    assert line.startswith("hmkd predict: error: image %s is empty (0 bytes)" % (folder / "b_empty.png")), line
    assert visible_files(str(out)) == ["label/a.png"]   # what came before it, whole; nothing half-written

    code, stdout, err = predict(capsys, folder, "--model", run.path, "--out", out, "--outputs", "label",
                                "--skip-bad")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == len(bad) + 1, err
    for name, line in zip(bad, lines):
        assert line.startswith("hmkd predict: skipped: image %s " % (folder / name)), line
    assert "d_text.jpg cannot be decoded" in lines[1] and "f_dangling.png cannot be read" in lines[2]
    assert lines[-1] == "hmkd predict: %d inputs failed (listed above); exit status 1" % len(bad)
    assert visible_files(str(out)) == ["label/a.png", "label/c.png", "label/e.png"]
    assert "1 skipped: their outputs exist" in stdout and "%d bad inputs skipped" % len(bad) in stdout


def test_bad_video_model_and_output_are_one_line(run_dir, tmp_path, capsys):
    run, model = run_dir()
    good = write_image(tmp_path / "in" / "a.png", blocky(np.random.default_rng(4), 24, 32))
    fake = tmp_path / "in" / "clip.mp4"
    fake.write_text("not a video\n")
    code, _, err = predict(capsys, good, fake, "--model", run.path, "--out", tmp_path / "o1")
    assert code == 2 and one_line(err) == ("hmkd predict: error: video %s cannot be opened (OpenCV's VideoCapture); "
                                           "expected a readable video file" % fake)
    code, _, err = predict(capsys, good, fake, "--model", run.path, "--out", tmp_path / "o1", "--skip-bad")
    assert code == 1 and "hmkd predict: skipped: video %s cannot be opened" % fake in err

    weights = tmp_path / "weights.bin"
    weights.write_text("?")
    code, _, err = predict(capsys, good, "--model", weights, "--out", tmp_path / "o2")
    assert code == 2 and "--model %s is none of the accepted kinds" % weights in one_line(err)
    assert not os.listdir(str(tmp_path / "o2"))

    bare = tmp_path / "bare.pt"
    with open(str(bare), "wb") as handle:   # the export code's TorchScript, without the hmkd.* metadata
        handle.write(FORMATS["torchscript"].serialize(StudentLogits(model).eval(), torch.zeros(1, 3, 24, 32), {}))
    code, _, err = predict(capsys, good, "--model", bare, "--out", tmp_path / "o3")
    assert code == 2 and "%s has no hmkd.* metadata" % bare in one_line(err)
    code, _, err = predict(capsys, good, "--model", bare, "--out", tmp_path / "o3", "--normalize", "imagenet_rgb",
                           "--classes", ",".join(CLASSES))
    assert code == 0, err
    assert os.path.isfile(str(tmp_path / "o3" / "palette" / "a.png"))

    a_file = tmp_path / "a_file"
    a_file.write_text("")
    code, _, err = predict(capsys, good, "--model", run.path, "--out", a_file)
    assert code == 2 and one_line(err).endswith("--out %s is a file, not a folder; remove or rename it, or pass "
                                                "another --out" % a_file)


def test_an_output_folder_that_cannot_be_written(run_dir, tmp_path, capsys):
    run, _ = run_dir()
    good = write_image(tmp_path / "a.png", blocky(np.random.default_rng(4), 24, 32))
    locked = tmp_path / "locked"
    locked.mkdir()
    mounted = False
    if os.geteuid() == 0:   # permission bits do not stop root: a read-only filesystem does
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=65536", "tmpfs", str(locked)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip("mount -t tmpfs -o ro failed: %s" % result.stderr.strip())
        mounted = True
    else:
        os.chmod(str(locked), 0o555)
    try:
        code, _, err = predict(capsys, good, "--model", run.path, "--out", locked / "out")
        assert code == 2
        line = one_line(err)
        assert line.startswith("hmkd predict: error: cannot write in --out %s (" % (locked / "out")), line
    finally:
        if mounted:
            subprocess.run(["umount", str(locked)], check=True)
