"""Real inputs for hmkd predict's tests, written with OpenCV: blocky images, videos, a sharpened random student.

Usage (importable: pytest's pythonpath has tests/): from predict_files import IMAGES, blocky, write_image, write_video
"""
import os

import cv2
import numpy as np
import torch

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
    """Scales the classifier so a random network's predictions change from block to block."""
    head = model.decode_head if hasattr(model, "decode_head") else model
    with torch.no_grad():
        for name, parameter in head.named_parameters():
            if "classifier" in name or "conv_seg" in name or "cls" in name:
                parameter.mul_(20)
    return model
