"""A finished run directory in the trainer's layout (config.yaml, model.pth, eval.json, DONE), written in seconds.

Usage (importable: pytest's pythonpath has tests/): run, model = write_finished_run(tmp_path / "run", "segformer_tiny",
["road", "car"])
"""
import os

import torch
import yaml

from hmkd.config import config_from_dict
from hmkd.evaluation.record import EvalRecord
from hmkd.models import build_model
from hmkd.rundir import RunDir


def write_finished_run(path, model_name, class_names, normalize="imagenet_rgb", options=None, seed=0):
    """The files a finished train/distill run leaves, with a randomly initialised student (its BatchNorm statistics
    randomised too, so eval-mode normalisation is exercised); returns (RunDir, the student in eval mode)."""
    options = dict(options or {})
    cfg = config_from_dict({"model": {"name": model_name, "normalize": normalize, "options": options},
                            "data": {"name": "synthetic", "num_classes": len(class_names), "image_size": [48, 64],
                                     "crop_size": [48, 64], "normalize": normalize}})
    torch.manual_seed(seed)
    model = build_model(model_name, len(class_names), **options)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    run = RunDir(str(path))
    os.makedirs(run.path, exist_ok=True)
    with open(run.config, "w") as handle:
        yaml.safe_dump(cfg.to_dict(), handle, sort_keys=False)
    torch.save({"model": model.state_dict(), "model_name": model_name, "num_classes": len(class_names),
                "normalize": normalize, "step": 7, "hmkd_version": "0.1.0"}, run.model)
    scores = {"iou": 0.5, "acc": 0.5}
    EvalRecord(mIoU=0.5, aAcc=0.5, mAcc=0.5, num_images=1, num_pixels=1, per_class={n: scores for n in class_names},
               confusion_matrix=[[0] * len(class_names)] * len(class_names), model=model_name, step=7
               ).write(run.eval_json)
    run.mark_done({"step": 7})
    return run, model.eval()

