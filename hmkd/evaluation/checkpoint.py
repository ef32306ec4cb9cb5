"""Evaluate a trained checkpoint under its config's protocol, and describe any evaluated model as one record.

Usage:
    record = evaluate_checkpoint(cfg, "runs/smoke/hmkd/model.pth", env, out_dir=RunDir(run_dir).predictions)
    record = evaluate_checkpoint(cfg, path, env, run=RunDir(run_dir))        # + server/, server.zip (eval.server_files)
    record = record_for(cfg, model, dataset, metrics, checkpoint=path, step=1000, train_seconds=812.5)

Both the trainer's final evaluation and `hmkd eval` / the compare stage build their eval.json through ``record_for``,
so the file has one schema whichever path wrote it.
"""
import logging
import os
from typing import Any, Dict, Optional

from torch import nn

from hmkd.config import ExperimentConfig
from hmkd.config.schema import resolve_normalization
from hmkd.data import build_dataset
from hmkd.evaluation.evaluator import evaluate
from hmkd.evaluation.record import EvalRecord
from hmkd.evaluation.server_files import ServerFiles
from hmkd.models import build_model, load_pretrained
from hmkd.models.complexity import model_complexity
from hmkd.rundir import RunDir

log = logging.getLogger(__name__)


def complexity_size(cfg: ExperimentConfig):
    """The image size the cost is counted at: the training crop (the literature's convention)."""
    return list(cfg.data.crop_size or cfg.data.image_size)


def record_for(cfg: ExperimentConfig, model: nn.Module, dataset: Any, metrics: Dict[str, Any],
               checkpoint: Optional[str] = None, step: Optional[int] = None,
               train_seconds: Optional[float] = None) -> EvalRecord:
    """The eval.json record of ``model`` evaluated on ``dataset`` under ``cfg``: scores, protocol, training and
    cost (parameters and MACs at the training crop size)."""
    size = complexity_size(cfg)
    cost = model_cost(model, size)
    return EvalRecord.from_metrics(
        metrics, dataset.class_names, model=cfg.model.name,
        checkpoint=os.path.abspath(checkpoint) if checkpoint else None, split=cfg.eval.split, mode=cfg.eval.mode,
        flip=cfg.eval.flip, scales=list(cfg.eval.scales), step=step,
        train_seconds=None if train_seconds is None else round(train_seconds, 1),
        teacher=cfg.teacher.name if cfg.teacher else None, loss_terms=sorted(cfg.loss.terms), seed=cfg.train.seed,
        params=cost["params"], flops=cost["flops"], flops_size=size)


def model_cost(model: nn.Module, size) -> Dict[str, Optional[int]]:
    """Parameters and MACs at ``size``; without a FLOP counter (mmcv-full not installed) the MACs stay unknown
    rather than failing a finished training run."""
    try:
        return model_complexity(model, tuple(size))
    except ImportError as exc:
        log.warning("FLOPs not counted (%s); eval.json records them as null", exc)
        return {"params": sum(p.numel() for p in model.parameters()), "flops": None}


def _trained_record(checkpoint: str) -> Optional[EvalRecord]:
    """The training record beside a run's model.pth, which knows the step and the training time."""
    run = RunDir(os.path.dirname(os.path.abspath(checkpoint)))
    if os.path.abspath(checkpoint) != os.path.abspath(run.model) or not os.path.isfile(run.eval_json):
        return None
    try:
        return EvalRecord.read(run.eval_json)
    except ValueError as exc:  # a damaged training record costs only the step and the training time
        log.warning("%s; its step and training time stay unknown", exc)
        return None


def evaluate_checkpoint(cfg: ExperimentConfig, checkpoint: str, env: Any, out_dir: Optional[str] = None,
                        run: Optional[RunDir] = None) -> EvalRecord:
    """``checkpoint`` (a run's model.pth, a step checkpoint or a weights file) loaded strictly into ``cfg.model``
    and evaluated on ``cfg.eval.split`` by every rank of ``env``; pictures into ``out_dir`` on the main rank; with
    ``cfg.eval.server_files``, the benchmark-server files into ``run``'s server/ and server.zip."""
    if cfg.eval.server_files and run is None:
        raise ValueError("eval.server_files needs a run directory to write server/ and server.zip into")
    cfg = resolve_normalization(cfg, checkpoint)  # the model's own normalisation, as recorded in its checkpoint
    dataset = build_dataset(cfg.data, split=cfg.eval.split, train=False)
    model = build_model(cfg.model.name, dataset.num_classes, **cfg.model.options)
    load_pretrained(model, checkpoint, strict=True)
    model.to(env.device)
    server = ServerFiles(dataset, run.server) if cfg.eval.server_files else None
    metrics = evaluate(model, dataset, cfg.eval, env.device, env.rank, env.world_size,
                       out_dir=out_dir if env.is_main else None, on_prediction=server.write if server else None)
    server_zip = server.publish(run.server_zip, env.is_main) if server else None
    trained = _trained_record(checkpoint)
    record = record_for(cfg, model, dataset, metrics, checkpoint, step=trained.step if trained else None,
                        train_seconds=trained.train_seconds if trained else None)
    record.server_files = os.path.abspath(server_zip) if server_zip else None
    return record
