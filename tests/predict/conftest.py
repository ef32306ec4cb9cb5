"""hmkd predict fixtures: a finished run (tests/finished_run.py), a folder of PNG and JPEG images of mixed sizes
(colour and greyscale) and an mp4, written with OpenCV under tmp_path (tests/predict_files.py)."""
import numpy as np
import pytest
import torch
from finished_run import write_finished_run
from predict_files import CLASSES, IMAGES, blocky, sharpen, write_image, write_video


@pytest.fixture()
def run_dir(tmp_path):
    """A finished deeplabv3_tiny run (3 classes, imagenet_rgb), its classifier sharpened; (RunDir, model)."""
    def make(name="deeplabv3_tiny", class_names=CLASSES, normalize="imagenet_rgb"):
        run, model = write_finished_run(tmp_path / ("run_" + name), name, list(class_names), normalize)
        sharpen(model)
        state = torch.load(run.model)
        state["model"] = model.state_dict()
        torch.save(state, run.model)
        return run, model
    return make


@pytest.fixture()
def image_folder(tmp_path):
    """IMAGES under tmp_path/images (and a README the folder search leaves out); returns the folder."""
    folder = tmp_path / "images"
    rng = np.random.default_rng(0)
    for rel, height, width, kind in IMAGES:
        array = blocky(rng, height, width, 1 if kind == "grey" else 3)
        write_image(folder / rel, array)
    (folder / "README.txt").write_text("not an image\n")
    return str(folder)


@pytest.fixture()
def video_file(tmp_path):
    rng = np.random.default_rng(1)
    frames = [blocky(rng, 48, 64) for _ in range(5)]
    return write_video(tmp_path / "clip.mp4", frames)
