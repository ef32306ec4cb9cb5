"""Export a finished run's student to a file, checked against torch before it is published.

Usage:
    result = export_run("runs/smoke/hmkd", "onnx")                      # -> runs/smoke/hmkd/model.onnx
    result = export_run(run_dir, "torchscript", output="/deploy/r18.pt", size=(512, 1024))
    result.path, result.max_abs_diff                                     # {"512x1024": 2e-06, "384x512": 3e-06}

The module is traced at ``size`` (default: the training crop), then the file's own runtime (onnxruntime, torch.jit)
is run at that size (batch 1) and at a second one that differs in height and width (batch 2), and must give torch's
logits to within ``TOLERANCE``: a dimension frozen by the trace or an op exported wrongly fails here, not in
deployment. Nothing is written when the check fails, and the file is written atomically (temp file, rename).
"""
import os
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch

from hmkd.atomic import DiskFullError, atomic_write_bytes
from hmkd.deploy.formats import export_format
from hmkd.deploy.student import export_metadata, load_student
from hmkd.evaluation.checkpoint import complexity_size
from hmkd.rundir import RunDir

TOLERANCE = 1e-4


class ExportResult(NamedTuple):
    path: str
    format: str
    bytes: int
    metadata: Dict[str, str]
    max_abs_diff: Dict[str, float]  # "HxW" -> max |file's logits - torch's|; empty when not checked


def check_sizes(size: Sequence[int]) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """The traced size and a second one differing in both height and width (and in aspect ratio)."""
    height, width = int(size[0]), int(size[1])
    return (height, width), (max(1, height * 3 // 4), max(1, width // 2))


def check_output(path: str) -> None:
    """Refuses before the (slow) export an output that cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if os.path.isdir(path):
        raise ValueError("output %s is a folder; give a file name, e.g. %s" % (path, os.path.join(path, "model.onnx")))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise ValueError("cannot write output %s: %s is %s; pass --output in a folder you can write" % (
            path, folder, "not a folder" if not os.path.isdir(folder) else "not writable"))


def write_output(path: str, data: bytes) -> None:
    try:
        atomic_write_bytes(path, data)
    except DiskFullError:
        raise
    except OSError as exc:
        raise ValueError("cannot write output %s (%s); pass --output in a folder you can write"
                         % (path, exc.strerror or exc))


def export_run(run_dir: str, fmt_name: str, output: Optional[str] = None, size: Optional[Sequence[int]] = None,
               verify: bool = True) -> ExportResult:
    fmt = export_format(fmt_name)
    path = output or RunDir(run_dir).exported(fmt.extension)
    check_output(path)
    student = load_student(run_dir)
    sizes = check_sizes(size or complexity_size(student.cfg))
    metadata = export_metadata(student)
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn((batch, 3) + s, generator=generator) for batch, s in zip((1, 2), sizes)]
    data = fmt.serialize(student.module, inputs[0], metadata)
    diffs: Dict[str, float] = {}
    if verify:
        run = fmt.runner(data)
        for s, images in zip(sizes, inputs):
            with torch.no_grad():
                expected = student.module(images)
            got = run(images)
            if got.shape != expected.shape:
                raise ValueError("exported %s gives logits of shape %s at %dx%d, torch %s; nothing written"
                                 % (fmt.name, tuple(got.shape), s[0], s[1], tuple(expected.shape)))
            diffs["%dx%d" % s] = float((got - expected).abs().max())
        worst = max(diffs, key=diffs.get)
        if diffs[worst] > TOLERANCE:
            raise ValueError("exported %s differs from torch by %.3g at %s (tolerance %g); nothing written to %s"
                             % (fmt.name, diffs[worst], worst, TOLERANCE, path))
    write_output(path, data)
    return ExportResult(os.path.abspath(path), fmt.name, len(data), metadata, diffs)
