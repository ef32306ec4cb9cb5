"""Evaluation: full-resolution inference (whole, sliding window, flip, multi-scale), a dataset-level IoU meter,
sharded evaluation that counts every image once, and eval.json / table reporting.

Usage:
    from hmkd.evaluation import evaluate, format_table, write_eval_json
    metrics = evaluate(model, val_set, num_classes=19, ignore_index=255, device=device, mode="whole")
    print(format_table(metrics, val_set.class_names)); write_eval_json("eval.json", metrics, val_set.class_names)
"""
from hmkd.evaluation.evaluator import display_image, evaluate, evaluate_model, save_prediction
from hmkd.evaluation.inference import (check_options, forward_logits, predict_logits, scaled_size, slide_logits,
                                       window_starts)
from hmkd.evaluation.metrics import SegMetric, pair_counts
from hmkd.evaluation.report import eval_record, format_table, write_eval_json
from hmkd.evaluation.sampler import ShardSampler

__all__ = [
    "SegMetric", "ShardSampler", "check_options", "display_image", "eval_record", "evaluate", "evaluate_model",
    "format_table", "forward_logits", "pair_counts", "predict_logits", "save_prediction", "scaled_size",
    "slide_logits", "window_starts", "write_eval_json",
]
