"""Load pretrained weights from local files in their official formats; never download anything.

Usage: report = load_pretrained(model, "weights/resnet18-5c106cde.pth", sha256=None)

Reads torchvision ResNet checkpoints, NVlabs MiT encoders, Hugging Face SegFormer state dicts, mmcv-style
``{"state_dict": ...}`` files and this project's own checkpoints (``{"model": ...}``; from a training checkpoint
only the student's weights). The ``checkpoint_filter_fn`` that ``build_model`` records on the model (from its
registry entry) decides whether the file fills the backbone or the whole model. Missing and unexpected
keys are reported; a shape mismatch or an unreadable file stops with an error naming the file and the keys.

``weights_family(path)`` says which family a file comes from, and so which input normalisation its networks were
trained with (``WEIGHT_FAMILIES``), from its file name or its key names, without reading its tensors;
``input_normalization`` resolves a config's ``normalize: auto`` from it and warns when a declared value contradicts it.
"""
import builtins
import collections
import hashlib
import logging
import os
import pickle
import re
import warnings
import zipfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

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
    obj = _unwrap(obj)
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError("weights file %s does not hold a state dict (name -> tensor)" % path)
    return _strip_prefixes(obj)


def _unwrap(obj: Any) -> Any:
    """The state dict inside the usual containers (``{"model": ...}``, mmcv's ``{"state_dict": ...}``)."""
    for container in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(container), dict):
            return obj[container]
    return obj


def _strip_prefixes(state: Dict[str, Any]) -> Dict[str, Any]:
    """DDP's ``module.`` dropped; of a training checkpoint only the student (not the alignment modules)."""
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith("student.") for k in state):
        state = {k[len("student."):]: v for k, v in state.items() if k.startswith("student.")}
    return state


def load_pretrained(model: nn.Module, path: str, sha256: Optional[str] = None, strict: bool = False) -> LoadReport:
    """Load ``path`` into ``model`` (or the part of it the file is for) and report what did not match.

    ``strict`` turns missing or unexpected keys into errors (used for this project's own checkpoints).
    """
    state = read_state_dict(path, sha256)
    filter_fn: Optional[Callable] = getattr(model, "checkpoint_filter_fn", None)
    target, state = filter_fn(state, model) if filter_fn else (model, state)
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


# Weight family -> (the input normalisation its networks were trained with, hmkd.data NORMALIZATIONS; what it is).
WEIGHT_FAMILIES = {
    "torchvision": ("imagenet_rgb", "a torchvision ImageNet ResNet"),
    "nvlabs_mit": ("imagenet_rgb", "an NVlabs MiT ImageNet encoder"),
    "huggingface_segformer": ("imagenet_rgb", "a Hugging Face SegFormer"),
    "mmseg": ("imagenet_rgb", "an mmsegmentation checkpoint"),
    # CIRKD's recipe (winycg/CIRKD dataset/cityscapes.py: cv2.imread BGR, minus (104.008, 116.669, 122.679), no std).
    "cirkd": ("bgr_mean", "a CIRKD deep-stem ResNet"),
}

# Official file names, matched before any byte is read.
_FAMILY_FILE_NAMES = (
    (re.compile(r"^resnet\d+-[0-9a-f]{8}\.pth$"), "torchvision"),
    (re.compile(r"^mit_b[0-5]\.pth$"), "nvlabs_mit"),
    (re.compile(r"^segformer_mit-b[0-5]_.*\.pth$"), "mmseg"),
    (re.compile(r"^(resnet\d+|mobilenetv2)-imagenet\.pth$"), "cirkd"),
    (re.compile(r"^[a-z0-9]+_resnet\d+_[a-z0-9_]+_best_model\.pth$"), "cirkd"),
)


class WeightsFamily(NamedTuple):
    name: str                 # a WEIGHT_FAMILIES key, or "hmkd" for this project's checkpoints
    normalize: Optional[str]  # what its networks were trained with; None for an hmkd file that does not say
    description: str


def _family_from_keys(obj: Any) -> Optional[str]:
    keys = set(_strip_prefixes(_unwrap(obj)))
    if any(k.startswith(("segformer.", "encoder.patch_embeddings.")) for k in keys):
        return "huggingface_segformer"
    if any(k.startswith(("backbone.layers.0.0.projection.", "backbone.stem.", "decode_head.conv_seg.")) for k in keys):
        return "mmseg"
    if "patch_embed1.proj.weight" in keys:
        return "nvlabs_mit"
    stem = {k[len("pretrained."):] for k in keys if k.startswith("pretrained.")} or keys
    if {"conv1.weight", "conv2.weight", "conv3.weight"} <= stem or "conv1.0.weight" in stem:
        return "cirkd"  # the deep stem, as separate convs (CIRKD's ResNetV1b) or a Sequential
    if {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight"} <= keys:
        return "torchvision"
    return None


def _hmkd_normalization(obj: Dict[str, Any]) -> Optional[str]:
    """What an hmkd checkpoint's model was trained with: model.pth records it, step files have the run's config."""
    if isinstance(obj.get("normalize"), str):
        return obj["normalize"]
    config = obj.get("config")
    data = config.get("data") if isinstance(config, dict) else None
    return data.get("normalize") if isinstance(data, dict) and isinstance(data.get("normalize"), str) else None


def weights_family(path: str) -> Optional[WeightsFamily]:
    """The family of the weights file at ``path`` from its name or its key names; None when neither tells (or the
    file cannot be read: loading it reports that)."""
    name = os.path.basename(path)
    for pattern, family in _FAMILY_FILE_NAMES:
        if pattern.match(name):
            return WeightsFamily(family, *WEIGHT_FAMILIES[family])
    try:
        obj = read_structure(path)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, zipfile.BadZipFile):
        return None
    if not isinstance(obj, dict):
        return None
    if "hmkd_version" in obj:
        normalize = _hmkd_normalization(obj)
        return WeightsFamily("hmkd", normalize, "this project's checkpoint (trained with %s)" % (normalize or
                                                                                               "an unrecorded "
                                                                                               "normalisation"))
    family = _family_from_keys(obj)
    return WeightsFamily(family, *WEIGHT_FAMILIES[family]) if family else None


def input_normalization(key: str, declared: str, weight_files: Sequence[Optional[str]], fallback: str
                        ) -> Tuple[str, str]:
    """(normalisation, why) for the config key ``key`` (e.g. ``model.normalize``) whose value is ``declared``.

    ``auto`` takes it from the first of ``weight_files`` whose family says, else ``fallback`` (the data section's).
    A declared value that contradicts such a file warns, naming the key, the value, the file and the family's."""
    for path in weight_files:
        if not path or not os.path.isfile(path):
            continue
        family = weights_family(path)
        if family is None or family.normalize is None:
            continue
        if declared == "auto":
            return family.normalize, "from %s, %s" % (path, family.description)
        if declared != family.normalize:
            warnings.warn("%s=%s, but %s is %s, whose networks were trained with %s; set %s=%s (or auto)"
                          % (key, declared, path, family.description, family.normalize, key, family.normalize))
        return declared, "as configured"
    if declared == "auto":
        return fallback, "data.normalize (no weights file says)"
    return declared, "as configured"


class _Opaque:
    """Whatever a pickle builds other than plain containers (tensors, storages, numpy arrays): nothing is made."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass


_PLAIN = {("collections", "OrderedDict"): collections.OrderedDict}
_PLAIN.update({("builtins", n): getattr(builtins, n) for n in ("dict", "list", "tuple", "set", "frozenset", "int",
                                                                "float", "str", "bytes", "bool", "complex", "slice")})


class _StructureUnpickler(pickle.Unpickler):
    """Rebuilds the dicts, lists, names and numbers of a checkpoint and nothing else: no tensor data is read and no
    code of the file's choosing runs."""

    def find_class(self, module, name):
        return _PLAIN.get((module, name)) or _Opaque

    def persistent_load(self, pid):
        return None


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c


def read_structure(path: str) -> Any:
    """A ``torch.save`` file's object with every tensor replaced by a placeholder: its keys and metadata at the cost
    of the pickle alone (zip format: ``*/data.pkl``; the legacy format: its fourth pickle, before the storages)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
            if not pickles:
                raise ValueError("%s has no data.pkl" % path)
            with archive.open(pickles[0]) as handle:
                return _StructureUnpickler(handle).load()
    with open(path, "rb") as handle:
        if _StructureUnpickler(handle).load() != _LEGACY_MAGIC:
            raise ValueError("%s is not a torch.save file" % path)
        _StructureUnpickler(handle).load()  # protocol version
        _StructureUnpickler(handle).load()  # system info
        return _StructureUnpickler(handle).load()
