"""The trained student of a finished run, as one module for deployment, and what its exported file records.

Usage:
    student = load_student("runs/smoke/hmkd")       # RunStudent(module, cfg, class_names, step, run_dir)
    logits_nkhw = student.module(images_nchw)        # logits at the input's resolution, one tensor
    metadata = export_metadata(student)              # {"hmkd.normalization": '{"mode": ...}', ...}: JSON text each

The student alone: model.pth holds no alignment module and no teacher, and the module returns the logits only
(no stage features, no auxiliary head). Its logits are resized bilinearly (align_corners=False) from the model's
output stride to the input's size, as evaluation's whole-image pass does, so a deployed model and ``hmkd eval``
agree; the metadata says so. Class names come from the run's eval.json (written with model.pth, from
the dataset the run was evaluated on), so exporting needs no dataset on the machine.
"""
import json
import os
from typing import Any, Dict, List, NamedTuple, Optional

from torch import Tensor, nn

from hmkd import __version__
from hmkd.config import ExperimentConfig, config_from_dict
from hmkd.config.loader import read_yaml
from hmkd.config.schema import resolve_normalization
from hmkd.data.transforms import NORMALIZATIONS
from hmkd.evaluation.record import EvalRecord
from hmkd.models import build_model, load_pretrained
from hmkd.resize import resize_bilinear
from hmkd.rundir import RunDir

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
# Every value is JSON text, under the same keys in an ONNX file's metadata_props and a TorchScript file's extra files.
METADATA_KEYS = ("hmkd.version", "hmkd.model", "hmkd.class_names", "hmkd.normalization", "hmkd.input",
                 "hmkd.output", "hmkd.source")


class StudentLogits(nn.Module):
    """A segmentor's logits at its input's resolution, as one tensor: exporters and runtimes take tensors, not the
    SegOutput the trainer reads features from. The same resize as evaluation's forward_logits, minus its same-size
    shortcut, which a trace would freeze at the traced size."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images_nchw: Tensor) -> Tensor:
        return resize_bilinear(self.model(images_nchw).logits.float(), images_nchw.shape[-2:])


class RunStudent(NamedTuple):
    module: StudentLogits
    cfg: ExperimentConfig
    class_names: List[str]
    step: Optional[int]
    run_dir: str


def load_student(run_dir: str) -> RunStudent:
    """The student of a finished train/distill run, in eval mode on the CPU; every missing or foreign piece of the
    run directory is one error naming the file and what to do."""
    run = RunDir(run_dir)
    if not os.path.isdir(run.path):
        raise FileNotFoundError("run directory %s does not exist; give the run directory of a finished train or "
                                "distill stage (it holds model.pth and DONE)" % run.path)
    if not run.is_done():
        raise ValueError("%s is not DONE: its training has not finished; run the same train/distill command (or "
                         "submit the spec) again to finish it, then export" % run.path)
    if not os.path.isfile(run.model):
        raise FileNotFoundError("%s is DONE but has no model.pth: it is not a train or distill run (an eval or report "
                                "stage?); export the run directory that trained the model" % run.path)
    try:
        cfg = config_from_dict(read_yaml(run.config))
    except ValueError as exc:
        raise ValueError("%s: %s" % (run.config, exc))
    cfg = resolve_normalization(cfg, run.model)  # the student's own, as evaluation resolves it (model.pth records it)
    record = EvalRecord.read(run.eval_json)
    class_names = list(record.per_class)
    model = build_model(cfg.model.name, len(class_names), **cfg.model.options)
    load_pretrained(model, run.model, strict=True)
    return RunStudent(StudentLogits(model).eval(), cfg, class_names, record.step, os.path.abspath(run.path))


def normalization(mode: str) -> Dict[str, Any]:
    """hmkd.data.transforms' normalisation ``mode`` spelled out for a runtime that has none of this package."""
    to_rgb, mean, std = NORMALIZATIONS[mode]
    return {"mode": mode, "channel_order": "RGB" if to_rgb else "BGR", "mean": list(mean), "std": list(std),
            "pixel_range": [0, 255],
            "formula": "input[c] = (pixel[c] - mean[c]) / std[c], pixels 0..255 in channel_order, planes NCHW"}


def export_metadata(student: RunStudent) -> Dict[str, str]:
    model = student.module.model
    info = {
        "hmkd.version": __version__,
        "hmkd.model": student.cfg.model.name,
        "hmkd.class_names": student.class_names,
        "hmkd.normalization": normalization(student.cfg.model.normalize),
        "hmkd.input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "channels": 3,
                       "dynamic": ["batch", "height", "width"]},
        "hmkd.output": {"name": OUTPUT_NAME, "layout": "NCHW", "dtype": "float32", "channels": len(student.class_names),
                        "resolution": "input", "model_output_stride": model.logits_reduction,
                        "resize": "bilinear, align_corners=False, from the model's output stride to the input size",
                        "values": "scores before softmax; argmax over channels is the class index"},
        "hmkd.source": {"run_dir": student.run_dir, "step": student.step, "dataset": student.cfg.data.name},
    }
    assert set(info) == set(METADATA_KEYS)
    return {key: json.dumps(value, sort_keys=True) for key, value in info.items()}
