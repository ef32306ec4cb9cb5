"""The trained student for deployment: ONNX and TorchScript files that carry their normalisation and class names.

Usage:
    from hmkd.deploy import export_run, read_metadata
    result = export_run("runs/smoke/hmkd", "onnx")          # runs/smoke/hmkd/model.onnx, checked against torch
    read_metadata(result.path)["hmkd.class_names"]          # ["class_0", "class_1", ...]
"""
from hmkd.deploy.export import TOLERANCE, ExportResult, export_run
from hmkd.deploy.formats import FORMATS, ONNX_OPSET, export_format, read_metadata
from hmkd.deploy.student import METADATA_KEYS, StudentLogits, export_metadata, load_student

__all__ = ["FORMATS", "METADATA_KEYS", "ONNX_OPSET", "TOLERANCE", "ExportResult", "StudentLogits", "export_format",
           "export_metadata", "export_run", "load_student", "read_metadata"]
