"""Load pretrained weights from local files in their official formats; never download anything.

Usage: report = load_pretrained(model, "weights/resnet18-5c106cde.pth", sha256=None)

Reads torchvision ResNet checkpoints, NVlabs MiT encoders, Hugging Face SegFormer state dicts, mmcv-style
``{"state_dict": ...}`` files and this project's own checkpoints (``{"model": ...}``; from a training checkpoint
only the student's weights). The ``checkpoint_filter_fn`` that ``build_model`` records on the model (from its
registry entry) decides whether the file fills the backbone or the whole model. Missing and unexpected
keys are reported; a shape mismatch or an unreadable file stops with an error naming the file and the keys.
"""
import hashlib
import logging
import os
from typing import Callable, Dict, List, NamedTuple, Optional

from torch import Tensor, nn

from hmkd.compat import torch_load

log = logging.getLogger(__name__)

_SHOW_KEYS = 5


class WeightsError(ValueError):
    """A weights file that cannot be used as asked; the message names the file and the fix."""


class LoadReport(NamedTuple):
    path: str
    target: str
    missing: List[str]
    unexpected: List[str]


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: str, sha256: Optional[str] = None) -> Dict[str, Tensor]:
    """Read a checkpoint file on the CPU and unwrap the usual containers to a flat name -> tensor dict."""
    if not os.path.isfile(path):
        raise FileNotFoundError("weights file %s does not exist; give the path of a local file (nothing is "
                                "downloaded)" % path)
    if sha256:
        actual = sha256_of(path)
        if actual.lower() != sha256.lower():
            raise WeightsError("weights file %s has sha256 %s but the config expects %s; fix the file or the "
                               "sha256 value" % (path, actual, sha256))
    try:
        obj = torch_load(path)
    except Exception as exc:  # torch raises several types for corrupt bytes: report them all the same way
        raise WeightsError("weights file %s cannot be read (%s: %s); it is truncated or not a PyTorch "
                           "checkpoint" % (path, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))
    for container in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(container), dict):
            obj = obj[container]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError("weights file %s does not hold a state dict (name -> tensor)" % path)
    obj = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    if any(k.startswith("student.") for k in obj):  # a training checkpoint: the student, not the alignment modules
        obj = {k[len("student."):]: v for k, v in obj.items() if k.startswith("student.")}
    return obj


def load_pretrained(model: nn.Module, path: str, sha256: Optional[str] = None, strict: bool = False) -> LoadReport:
    """Load ``path`` into ``model`` (or the part of it the file is for) and report what did not match.

    ``strict`` turns missing or unexpected keys into errors (used for this project's own checkpoints).
    """
    state = read_state_dict(path, sha256)
    filter_fn: Optional[Callable] = getattr(model, "checkpoint_filter_fn", None)
    try:
        target, state = filter_fn(state, model) if filter_fn else (model, state)
    except ValueError as exc:  # the filter knows the layout, not the file: name it here
        raise WeightsError("weights file %s: %s" % (path, exc))
    target_name = "model" if target is model else "backbone"
    own = target.state_dict()
    if not any(k in own for k in state):
        raise WeightsError("weights file %s has no key of the %s of %s (its first keys: %s); the file is for another "
                           "model family" % (path, target_name, type(model).__name__,
                                             ", ".join(list(state)[:_SHOW_KEYS])))
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        shown = ", ".join("%s %s vs %s" % (k, tuple(state[k].shape), tuple(own[k].shape))
                          for k in mismatched[:_SHOW_KEYS])
        raise WeightsError("weights file %s does not fit the %s of %s: %d shape mismatches (file vs model): %s; "
                           "check the model name and num_classes" % (path, target_name, type(model).__name__,
                                                                     len(mismatched), shown))
    result = target.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    report = LoadReport(path, target_name, missing, list(result.unexpected_keys))
    if not (report.missing or report.unexpected):
        log.info("loaded %s into the %s: all %d tensors matched", path, target_name, len(state))
        return report
    summary = "weights file %s -> %s: %d missing keys (%s), %d unexpected keys (%s)" % (
        path, target_name, len(report.missing), ", ".join(report.missing[:_SHOW_KEYS]),
        len(report.unexpected), ", ".join(report.unexpected[:_SHOW_KEYS]))
    if strict:
        raise WeightsError(summary + "; the file is not a checkpoint of this model")
    log.warning(summary)
    return report
