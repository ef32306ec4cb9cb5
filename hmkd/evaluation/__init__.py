"""Evaluation: full-resolution inference (whole, sliding window, flip, multi-scale), a dataset-level IoU meter,
sharded evaluation that counts every image once, and the eval.json record.

Usage:
    from hmkd.evaluation import EvalRecord, evaluate, format_table
    metrics = evaluate(model, val_set, cfg.eval, device)
    print(format_table(metrics, val_set.class_names))
    record = evaluate_checkpoint(cfg, "runs/smoke/hmkd/model.pth", env)    # hmkd.evaluation.checkpoint
    writer = ServerFiles(test_set, RunDir(run_dir).server)                  # Cityscapes benchmark-server files
"""
from hmkd.evaluation.evaluator import evaluate, inference_options
from hmkd.evaluation.inference import (check_options, forward_logits, predict_logits, scaled_size, slide_logits,
                                       window_starts)
from hmkd.evaluation.metrics import SegMetric, pair_counts
from hmkd.evaluation.pictures import display_image, save_prediction
from hmkd.evaluation.record import EvalRecord, format_table
from hmkd.evaluation.sampler import ShardSampler
from hmkd.evaluation.server_files import ServerFiles

__all__ = [
    "EvalRecord", "SegMetric", "ServerFiles", "ShardSampler", "check_options", "display_image", "evaluate",
    "format_table", "forward_logits", "inference_options", "pair_counts", "predict_logits", "save_prediction",
    "scaled_size", "slide_logits", "window_starts",
]
