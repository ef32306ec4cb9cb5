"""The model behind ``hmkd predict``: a run directory or model.pth through torch, or an exported file through its own
runtime (onnxruntime, torch.jit), all as one callable with the class names and normalisation it was trained with.

Usage:
    backend = load_backend("runs/smoke/hmkd", device="auto")              # or model.pth, model.onnx, model.pt
    backend = load_backend("x.onnx", "cpu", normalize="imagenet_rgb", classes="road,car,sky")   # no hmkd.* metadata
    logits_bkhw = predict_logits(backend, images_bchw, mode="slide", ...)  # hmkd.evaluation's inference, any backend
    backend.name, backend.class_names, backend.normalize, backend.device   # "onnxruntime", [...], "imagenet_rgb", cpu

Every backend returns logits at its input's resolution: the torch one is the run's segmentor itself (its SegOutput
resized by evaluation's forward_logits, exactly as ``hmkd eval`` computes it), the exported ones are the module
``hmkd export`` wrote. Which kind a path is: a folder is a run directory (DONE, model.pth: as ``hmkd export`` loads
it); ``.onnx`` is ONNX; a zip archive with TorchScript code is TorchScript; any other torch.save file with the
trainer's model.pth keys is a model.pth. ``--normalize`` and ``--classes`` fill what a file does not record.
"""
import os
import warnings
import zipfile
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from hmkd.config import config_from_dict
from hmkd.config.loader import read_yaml
from hmkd.data.transforms import NORMALIZATIONS
from hmkd.deploy.formats import FORMATS, read_metadata
from hmkd.deploy.student import load_student
from hmkd.engine.distributed import pick_device
from hmkd.engine.precision import Precision, amp_mode, resolve_precision
from hmkd.evaluation.record import EvalRecord
from hmkd.models import build_model, load_pretrained
from hmkd.models.weights import read_structure
from hmkd.rundir import RunDir

TORCH, ONNX, TORCHSCRIPT = "torch", "onnxruntime", "torchscript"
KINDS_TEXT = "a run directory, its model.pth, an .onnx file or a TorchScript .pt file (hmkd export)"


class Backend(NamedTuple):
    name: str                          # TORCH, ONNX or TORCHSCRIPT
    run: Callable[[Tensor], Any]       # images NCHW on ``device`` -> logits NCHW (or a SegOutput)
    class_names: List[str]
    normalize: str                     # a hmkd.data.transforms.NORMALIZATIONS mode
    device: torch.device               # where the inputs go
    precision: Precision               # autocast around the torch backend's forward (fp32 elsewhere)
    path: str
    model_name: Optional[str]
    window: Optional[Tuple[Tuple[int, int], Tuple[int, int]]] = None   # the run's eval crop_size and stride, if set

    def __call__(self, images_nchw: Tensor) -> Any:
        with self.precision.autocast():
            return self.run(images_nchw)


def choose_device(requested: str) -> torch.device:
    """--device auto|cpu|cuda, as everywhere (hmkd.engine.distributed.pick_device), with this option's name."""
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError("--device must be auto, cpu or cuda, got %r" % requested)
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA device is visible; use --device cpu or auto")
    return pick_device(requested, 0)


def parse_classes(text: Optional[str]) -> Optional[List[str]]:
    """--classes: comma-separated names, or a count N (class_0 ... class_N-1)."""
    if text is None:
        return None
    text = text.strip()
    if text.isdigit() and int(text) > 0:
        return ["class_%d" % k for k in range(int(text))]
    names = [n.strip() for n in text.split(",")]
    if not all(names) or len(set(names)) != len(names):
        raise ValueError("--classes must be comma-separated unique names or a count, got %r" % text)
    return names


def _check_normalize(value: Optional[str], where: str) -> Optional[str]:
    if value is not None and value not in NORMALIZATIONS:
        raise ValueError("%s must be one of %s, got %r" % (where, ", ".join(sorted(NORMALIZATIONS)), value))
    return value


def _fill(recorded: Any, given: Any, option: str, path: str, what: str) -> Any:
    """The recorded value; ``given`` only where nothing is recorded (warned as ignored otherwise)."""
    if recorded is not None:
        if given is not None and given != recorded:
            warnings.warn("%s is ignored: %s records %s (%s)" % (option, path, what, recorded if isinstance(
                recorded, str) else ",".join(recorded)))
        return recorded
    return given


def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def _checkpoint_header(path: str) -> Optional[Dict[str, Any]]:
    """model.pth's plain fields (model_name, num_classes, normalize), without reading its tensors; None when the file
    is no torch.save file or lacks them."""
    try:
        obj = read_structure(path)
    except Exception:  # noqa: BLE001 - any unreadable file is simply "not a model.pth" here
        return None
    if not isinstance(obj, dict) or "model" not in obj or not isinstance(obj.get("model_name"), str):
        return None
    return obj


def _eval_window(cfg) -> Optional[Tuple[Tuple[int, int], Tuple[int, int]]]:
    crop, stride = cfg.eval.crop_size, cfg.eval.stride
    return (tuple(crop), tuple(stride)) if crop and stride else None


def torch_backend(module, class_names: List[str], normalize: str, device: torch.device, amp: Optional[str] = None,
                  path: str = "", model_name: Optional[str] = None, window=None) -> Backend:
    """A segmentor in memory as the torch backend (what a run directory or model.pth loads into; benchmarks)."""
    precision = resolve_precision(amp_mode(amp, "--amp"), device, "--amp", warn=warnings.warn)
    module = module.to(device).eval()
    return Backend(TORCH, module, list(class_names), normalize, device, precision, path, model_name, window)


def _from_run_dir(path: str, device: torch.device, amp, normalize, classes) -> Backend:
    student = load_student(path)
    _fill(student.class_names, classes, "--classes", path, "its class names")
    _fill(student.cfg.model.normalize, normalize, "--normalize", path, "its normalisation")
    return torch_backend(student.module.model, student.class_names, student.cfg.model.normalize, device, amp,
                          RunDir(path).model, student.cfg.model.name, _eval_window(student.cfg))


def _from_model_file(path: str, header: Dict[str, Any], device: torch.device, amp, normalize, classes) -> Backend:
    """A model.pth: of a finished run as ``hmkd export`` loads it, else on its own (options from a config.yaml
    beside it, class names from an eval.json beside it, or --classes)."""
    folder = os.path.dirname(os.path.abspath(path))
    run = RunDir(folder)
    if os.path.abspath(path) == os.path.abspath(run.model) and run.is_done() and os.path.isfile(run.config):
        return _from_run_dir(folder, device, amp, normalize, classes)
    name, num_classes = header["model_name"], header.get("num_classes")
    options: Dict[str, Any] = {}
    window = None
    if os.path.isfile(run.config):
        cfg = config_from_dict(read_yaml(run.config))
        if cfg.model.name == name:
            options, window = dict(cfg.model.options), _eval_window(cfg)
    names = None
    if os.path.isfile(run.eval_json):
        names = list(EvalRecord.read(run.eval_json).per_class) or None
    names = _fill(names, classes, "--classes", path, "its class names (eval.json beside it)")
    if names is None:
        if not isinstance(num_classes, int):
            raise ValueError("%s records no class count and has no eval.json beside it; give --classes" % path)
        names = ["class_%d" % k for k in range(num_classes)]
    if isinstance(num_classes, int) and len(names) != num_classes:
        raise ValueError("%s has %d classes but %d class names were given (%s); give --classes with %d names"
                         % (path, num_classes, len(names), ",".join(names), num_classes))
    recorded = header.get("normalize") if header.get("normalize") in NORMALIZATIONS else None
    norm = _fill(recorded, normalize, "--normalize", path, "its normalisation")
    if norm is None:
        raise ValueError("%s does not record its normalisation; give --normalize (%s)" % (
            path, " or ".join(sorted(NORMALIZATIONS))))
    model = build_model(name, len(names), **options)
    load_pretrained(model, path, strict=True)
    return torch_backend(model, names, norm, device, amp, path, name, window)


def _metadata(path: str, fmt_name: str) -> Dict[str, Any]:
    try:
        return read_metadata(path)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnx and torch.jit raise many types for a damaged file
        raise ValueError("%s cannot be read as %s (%s: %s); give %s" % (
            path, fmt_name, type(exc).__name__, (str(exc).splitlines() or [""])[0][:200], KINDS_TEXT))


def _recorded_normalize(meta: Dict[str, Any], path: str) -> Optional[str]:
    norm = meta.get("hmkd.normalization")
    if norm is None:
        return None
    mode = norm.get("mode") if isinstance(norm, dict) else None
    if mode not in NORMALIZATIONS:
        raise ValueError("%s records normalisation %r, which this version does not know (%s)"
                         % (path, mode, ", ".join(sorted(NORMALIZATIONS))))
    to_rgb, mean, std = NORMALIZATIONS[mode]
    if [float(v) for v in norm.get("mean", mean)] != list(mean) or [float(v) for v in norm.get("std", std)] != \
            list(std) or norm.get("channel_order", "RGB" if to_rgb else "BGR") != ("RGB" if to_rgb else "BGR"):
        raise ValueError("%s records normalisation %s with mean %s, std %s, which differ from this version's %s"
                         % (path, mode, norm.get("mean"), norm.get("std"), mode))
    return mode


def _exported(path: str, fmt_name: str, device: torch.device, amp, normalize, classes) -> Backend:
    fmt = FORMATS[fmt_name]
    meta = _metadata(path, fmt_name)
    if not meta and (normalize is None or classes is None):
        raise ValueError("%s has no hmkd.* metadata (it was not written by hmkd export), so its normalisation and "
                         "class names are unknown; give --normalize (%s) and --classes (names or a count) to use it "
                         "anyway" % (path, " or ".join(sorted(NORMALIZATIONS))))
    names = _fill(meta.get("hmkd.class_names"), classes, "--classes", path, "its class names")
    norm = _fill(_recorded_normalize(meta, path), normalize, "--normalize", path, "its normalisation")
    if names is None or norm is None:
        raise ValueError("%s records %s but not %s; give %s" % (
            path, "class names" if names else "a normalisation", "a normalisation" if names else "class names",
            "--normalize" if names else "--classes"))
    if amp:
        warnings.warn("--amp %s is ignored for %s: an exported file runs in float32, as exported" % (amp, path))
    runs_on = fmt.runs_on(str(device))
    if runs_on != device.type:
        warnings.warn("%s runs on the CPU: the installed %s has no %s provider (pip install onnxruntime-gpu)"
                      % (path, fmt.runtime, device.type))
        device = torch.device("cpu")
    with open(path, "rb") as handle:
        run = fmt.runner(handle.read(), str(device))
    return Backend(ONNX if fmt_name == "onnx" else TORCHSCRIPT, run, list(names), norm, device,
                   Precision(device.type, None), path, meta.get("hmkd.model"))


def load_backend(path: str, device: str = "auto", normalize: Optional[str] = None, classes: Optional[str] = None,
                 amp: Optional[str] = None) -> Backend:
    """The backend for ``path`` on ``device``; a path of none of the accepted kinds is one ValueError naming it."""
    normalize = _check_normalize(normalize, "--normalize")
    names = parse_classes(classes)
    torch_device = choose_device(device)
    if os.path.isdir(path):
        return _from_run_dir(path, torch_device, amp, normalize, names)
    if not os.path.exists(path):
        raise FileNotFoundError("--model %s does not exist; give %s" % (path, KINDS_TEXT))
    if path.lower().endswith(".onnx"):
        return _exported(path, "onnx", torch_device, amp, normalize, names)
    if _is_torchscript(path):
        return _exported(path, "torchscript", torch_device, amp, normalize, names)
    header = _checkpoint_header(path)
    if header is not None:
        return _from_model_file(path, header, torch_device, amp, normalize, names)
    raise ValueError("--model %s is none of the accepted kinds: %s" % (path, KINDS_TEXT))
