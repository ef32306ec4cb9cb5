"""Predictions of a trained student on one's own images and videos (``hmkd predict``), with the model's own
pre-processing, through torch, onnxruntime or TorchScript.

Usage:
    from hmkd.predict import Outputs, PredictOptions, expand_sources, load_backend, predict
    backend = load_backend("runs/smoke/hmkd")                                   # or model.pth, .onnx, .pt
    outputs = Outputs("out", ["palette", "overlay"], backend.class_names)
    summary = predict(expand_sources(["photos/", "clip.mp4"]), backend, outputs, PredictOptions(batch_size=4))

One job per module: sources (what SOURCE names), reading (decoding to BGR uint8), backends (the model), outputs
(the files), progress (the bar), pipeline (threads, batches, resume).
"""
from hmkd.predict.backends import Backend, load_backend
from hmkd.predict.outputs import KINDS, Outputs, check_out_dir, palette_for, parse_kinds
from hmkd.predict.pipeline import PredictOptions, Summary, predict, predict_batch
from hmkd.predict.reading import BadInput, Conversions, read_image
from hmkd.predict.sources import Input, expand_sources

__all__ = ["KINDS", "Backend", "BadInput", "Conversions", "Input", "Outputs", "PredictOptions", "Summary",
           "check_out_dir", "expand_sources", "load_backend", "palette_for", "parse_kinds", "predict", "predict_batch",
           "read_image"]
