"""Evaluate a trained checkpoint with the config's protocol and write eval.json, the table and prediction PNGs.

Usage: metrics = evaluate_checkpoint(cfg, run_dir, "runs/student/model.pth", env)
"""
import os
from typing import Any, Dict

import yaml

from hmkd.config import ExperimentConfig
from hmkd.data import build_dataset
from hmkd.atomic import atomic_write_text
from hmkd.engine.distributed import DistEnv
from hmkd.evaluation import evaluate_model, format_table, write_eval_json
from hmkd.models import build_model, load_pretrained


def evaluate_checkpoint(cfg: ExperimentConfig, run_dir: str, checkpoint: str, env: DistEnv) -> Dict[str, Any]:
    dataset = build_dataset(cfg.data, split=cfg.eval.split, train=False)
    model = build_model(cfg.model.name, dataset.num_classes, **cfg.model.options)
    load_pretrained(model, checkpoint, strict=True)
    model.to(env.device)
    out_dir = os.path.join(run_dir, "plots", "predictions") if env.is_main else None
    metrics = evaluate_model(model, dataset, dataset.num_classes, cfg.loss.ignore_index, env.device, cfg.eval,
                             env.rank, env.world_size, out_dir=out_dir)
    if env.is_main:
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_text(os.path.join(run_dir, "config.yaml"), yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        write_eval_json(os.path.join(run_dir, "eval.json"), metrics, dataset.class_names,
                        extra={"model": cfg.model.name, "checkpoint": os.path.abspath(checkpoint),
                               "split": cfg.eval.split, "mode": cfg.eval.mode, "flip": cfg.eval.flip,
                               "scales": list(cfg.eval.scales)})
        print("%s on %s/%s (%d images, %s%s):\n%s" % (cfg.model.name, cfg.data.name, cfg.eval.split, len(dataset),
                                                     cfg.eval.mode, ", flip" if cfg.eval.flip else "",
                                                     format_table(metrics, dataset.class_names)))
    return {"mIoU": metrics["mIoU"], "aAcc": metrics["aAcc"], "checkpoint": os.path.abspath(checkpoint)}
