"""The file formats a student is exported to: ONNX (for onnxruntime and friends) and TorchScript (for libtorch).

Usage:
    fmt = export_format("onnx")                            # or "torchscript"; an unknown name is a ValueError
    data = fmt.serialize(module, example_nchw, metadata)   # bytes of the file, metadata inside it
    run = fmt.runner(data); logits_nkhw = run(images_nchw) # the file's own runtime, for checks, benchmarks, predict
    run = fmt.runner(data, "cuda")                         # on a GPU where the runtime has one (fmt.runs_on says)
    metadata = read_metadata("model.onnx")                 # either format, values parsed from JSON

Both trace the module once and keep batch, height and width dynamic: ONNX through torch's TorchScript-based
exporter at one opset both stacks write (torch 1.11 writes up to 15), TorchScript by ``torch.jit.trace``.
"""
import io
import json
import zipfile
from typing import Any, Callable, Dict

import torch
from torch import Tensor, nn

from hmkd.compat import onnx_export
from hmkd.deploy.student import INPUT_NAME, METADATA_KEYS, OUTPUT_NAME

ONNX_OPSET = 14
Runner = Callable[[Tensor], Tensor]


class ExportFormat:
    name = ""
    extension = ""
    runtime = ""

    def serialize(self, module: nn.Module, example_nchw: Tensor, metadata: Dict[str, str]) -> bytes:
        raise NotImplementedError

    def runner(self, data: bytes, device: str = "cpu") -> Runner:
        """The file's own runtime on ``device`` (``cuda`` where the runtime has it; see ``runs_on``)."""
        raise NotImplementedError

    def runs_on(self, device: str) -> str:
        """The device type ``runner(data, device)`` runs on: the one asked for, or "cpu" where the runtime has no
        other."""
        return torch.device(device).type

    def raw_metadata(self, path: str) -> Dict[str, str]:
        raise NotImplementedError


class OnnxFormat(ExportFormat):
    name, extension, runtime = "onnx", "onnx", "onnxruntime"

    def serialize(self, module: nn.Module, example_nchw: Tensor, metadata: Dict[str, str]) -> bytes:
        onnx = _require("onnx", "to write ONNX files")
        buffer = io.BytesIO()
        dynamic = {0: "batch", 2: "height", 3: "width"}
        with torch.no_grad():
            onnx_export(module, (example_nchw,), buffer, opset_version=ONNX_OPSET, input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
                        do_constant_folding=True)
        proto = onnx.load_model_from_string(buffer.getvalue())
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        return proto.SerializeToString()

    def runner(self, data: bytes, device: str = "cpu") -> Runner:
        ort = _require("onnxruntime", "to run ONNX files")
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        providers = (["CUDAExecutionProvider"] if self.runs_on(device) == "cuda" else []) + ["CPUExecutionProvider"]
        session = ort.InferenceSession(data, options, providers=providers)

        def run(images_nchw: Tensor) -> Tensor:
            logits = session.run([OUTPUT_NAME], {INPUT_NAME: images_nchw.detach().cpu().numpy()})[0]
            return torch.from_numpy(logits).to(images_nchw.device)
        return run

    def runs_on(self, device: str) -> str:
        """onnxruntime's CUDA provider where the installed package has it (onnxruntime-gpu), else the CPU."""
        if torch.device(device).type != "cuda":
            return "cpu"
        ort = _require("onnxruntime", "to run ONNX files")
        return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"

    def raw_metadata(self, path: str) -> Dict[str, str]:
        onnx = _require("onnx", "to read ONNX files")
        return {entry.key: entry.value for entry in onnx.load(path, load_external_data=False).metadata_props}


class TorchScriptFormat(ExportFormat):
    name, extension, runtime = "torchscript", "torchscript.pt", "torch.jit"

    def serialize(self, module: nn.Module, example_nchw: Tensor, metadata: Dict[str, str]) -> bytes:
        with torch.no_grad():
            traced = torch.jit.trace(module, (example_nchw,), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files=dict(metadata))
        return buffer.getvalue()

    def runner(self, data: bytes, device: str = "cpu") -> Runner:
        loaded = torch.jit.load(io.BytesIO(data), map_location=device)

        def run(images_nchw: Tensor) -> Tensor:
            with torch.no_grad():
                return loaded(images_nchw)
        return run

    def raw_metadata(self, path: str) -> Dict[str, str]:
        extra = {key: "" for key in METADATA_KEYS}
        torch.jit.load(path, map_location="cpu", _extra_files=extra)
        return {key: value.decode("utf-8") if isinstance(value, bytes) else value
                for key, value in extra.items() if value}


FORMATS: Dict[str, ExportFormat] = {f.name: f for f in (OnnxFormat(), TorchScriptFormat())}


def export_format(name: str) -> ExportFormat:
    if name not in FORMATS:
        raise ValueError("unknown export format %r; choose one of %s" % (name, ", ".join(FORMATS)))
    return FORMATS[name]


def read_metadata(path: str) -> Dict[str, Any]:
    """What an exported file records (hmkd.* keys, values parsed from JSON); the format is told by the file itself
    (a TorchScript file is a zip archive)."""
    fmt = FORMATS["torchscript" if zipfile.is_zipfile(path) else "onnx"]
    return {key: json.loads(value) for key, value in fmt.raw_metadata(path).items() if key in METADATA_KEYS}


def _require(module: str, why: str) -> Any:
    """An optional runtime package, or a ValueError naming the pinned version to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        pins = {"onnx": "onnx==1.17.0", "onnxruntime": "onnxruntime==1.19.2"}
        raise ValueError("%s is needed %s and is not installed; pip install %s" % (module, why, pins[module])) from None
