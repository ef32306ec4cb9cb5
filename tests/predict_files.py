"""Real inputs for hmkd predict's tests, written with OpenCV: blocky images, videos, a sharpened random student.

Usage (importable: pytest's pythonpath has tests/):
    run, model = finished_student(tmp_path / "run")              # a finished run, its classifier sharpened
    folder = image_folder(tmp_path / "images"); clip = video_file(tmp_path / "clip.mp4")
"""
import os

import cv2
import numpy as np
import torch
from finished_run import write_finished_run

CLASSES = ("road", "car", "sky")
# (relative path, height, width, kind): the sizes differ in both axes and repeat, so batches form and break.
IMAGES = (("a.png", 40, 56, "rgb"), ("b.png", 40, 56, "rgb"), ("c.jpg", 40, 56, "rgb"), ("sub/d.png", 33, 47, "grey"),
          ("sub/e.jpg", 48, 64, "grey"), ("sub/deeper/f.png", 40, 56, "rgb"))


def blocky(rng, height, width, channels=3, block=8, dtype=np.uint8, top=256):
    """Blocks of random colours: a random network then predicts several classes, in regions."""
    shape = (-(-height // block), -(-width // block)) + ((channels,) if channels > 1 else ())
    blocks = rng.integers(0, top, size=shape, dtype=dtype)
    return np.repeat(np.repeat(blocks, block, axis=0), block, axis=1)[:height, :width]


def write_image(path, array):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    assert cv2.imwrite(str(path), array), path
    return str(path)


def write_video(path, frames_bgr, fps=5.0):
    height, width = frames_bgr[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    assert writer.isOpened(), path
    for frame in frames_bgr:
        writer.write(frame)
    writer.release()
    return str(path)


def sharpen(model):
    """A random student whose predictions change from block to block: BatchNorm statistics back to their defaults
    (finished_run's random ones make one class win everywhere), no classifier bias, and the classifier scaled so the
    logits on a blocky image spread by about 3."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
    model.eval()
    probe = blocky(np.random.default_rng(99), 48, 64).transpose(2, 0, 1)[None].astype(np.float32) / 64.0 - 2.0
    with torch.no_grad():
        model.decode_head.classifier.bias.zero_()
        spread = float(model(torch.from_numpy(probe)).logits.std())
        model.decode_head.classifier.weight.mul_(3.0 / max(spread, 1e-6))
    return model


def finished_student(path, name="deeplabv3_tiny", class_names=CLASSES, normalize="imagenet_rgb"):
    """A finished run (tests/finished_run.py) whose model.pth holds the sharpened student; (RunDir, model)."""
    run, model = write_finished_run(path, name, list(class_names), normalize)
    sharpen(model)
    state = torch.load(run.model)
    state["model"] = model.state_dict()
    torch.save(state, run.model)
    return run, model


def image_folder(folder):
    """IMAGES under ``folder`` (and a README the folder search leaves out); returns the folder."""
    rng = np.random.default_rng(0)
    for rel, height, width, kind in IMAGES:
        write_image(os.path.join(str(folder), rel), blocky(rng, height, width, 1 if kind == "grey" else 3))
    with open(os.path.join(str(folder), "README.txt"), "w") as handle:
        handle.write("not an image\n")
    return str(folder)


def video_file(path, frames=5):
    rng = np.random.default_rng(1)
    return write_video(path, [blocky(rng, 48, 64) for _ in range(frames)])
