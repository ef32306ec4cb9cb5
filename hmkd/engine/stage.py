"""One stage in its run directory: skip when DONE, otherwise do the work and write DONE last.

Usage:
    result = run_stage(cfg, "/shared/exp/teacher")                     # train / distill (resumes)
    result = run_eval_stage(cfg, "/shared/exp/eval", "/shared/exp/student/model.pth")    # evaluate a checkpoint
    result = run_compare_stage("/shared/exp/eval", [("teacher", "/shared/exp/teacher"), ...])   # + report
"""
import logging
import os
import warnings
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import yaml

from hmkd.atomic import atomic_write_text
from hmkd.config import ExperimentConfig
from hmkd.engine.distributed import DistEnv, collective_failure, init_distributed, peer_lost, shutdown_distributed
from hmkd.rundir import RunDir, found_runs, run_name

log = logging.getLogger(__name__)


def _run_then_mark_done(device: str, run_dir: str, work: Callable[[DistEnv], Dict[str, Any]]) -> Dict[str, Any]:
    run = RunDir(run_dir)
    if run.is_done():
        log.info("%s is DONE; nothing to do (remove its DONE file to run it again)", run_dir)
        return run.read_done()
    try:
        env = init_distributed(device)
        try:
            result = work(env)
            if env.is_main:
                run.mark_done(result)
        finally:
            shutdown_distributed()
    except RuntimeError as exc:
        if collective_failure(exc):
            raise peer_lost(exc) from exc
        raise
    return result


def run_stage(cfg: ExperimentConfig, run_dir: str) -> Dict[str, Any]:
    from hmkd.engine.trainer import train  # heavy imports only when there is work

    if cfg.eval.server_files:
        warnings.warn("eval.server_files is ignored by training's own evaluation; evaluate the trained model.pth "
                      "with `hmkd eval ... --server-files` to write the benchmark-server files")
    return _run_then_mark_done(cfg.train.device, run_dir, lambda env: train(cfg, run_dir, env))


def _evaluate_into(cfg: ExperimentConfig, run_dir: str, checkpoint: str, env: DistEnv):
    """Evaluate ``checkpoint`` and, on the main rank, publish config.yaml, eval.json and the printed table."""
    from hmkd.evaluation.checkpoint import evaluate_checkpoint
    from hmkd.evaluation.record import format_table

    run = RunDir(run_dir)
    record = evaluate_checkpoint(cfg, checkpoint, env, out_dir=run.predictions, run=run)
    if env.is_main:
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_text(run.config, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        record.write(run.eval_json)
        print("%s on %s/%s (%d images, %s%s):\n%s" % (cfg.model.name, cfg.data.name, cfg.eval.split,
                                                     record.num_images, cfg.eval.mode,
                                                     ", flip" if cfg.eval.flip else "", format_table(record)))
        if record.not_scored:
            print("not scored: " + record.not_scored)
        if record.server_files:
            print("server files: %s (%d labelIds PNGs, also in %s/)" % (record.server_files, record.num_images,
                                                                      run.server))
    return record


def run_eval_stage(cfg: ExperimentConfig, run_dir: str, checkpoint: str) -> Dict[str, Any]:
    def work(env: DistEnv) -> Dict[str, Any]:
        record = _evaluate_into(cfg, run_dir, checkpoint, env)
        return {"mIoU": record.mIoU, "aAcc": record.aAcc, "checkpoint": record.checkpoint,
                "server_files": record.server_files}

    return _run_then_mark_done(cfg.train.device, run_dir, work)


def run_compare_stage(run_dir: str, compare: Sequence[Tuple[str, str]], overrides: Optional[Dict[str, Any]] = None,
                      baseline: Optional[str] = None) -> Dict[str, Any]:
    """Evaluate each compared stage's model.pth (every seed) with its own config updated by ``overrides`` (e.g. a
    sliding-window protocol, as a nested dict), then write report.md / report.json / charts into ``run_dir``, each
    stage's mIoU paired by seed against ``baseline``'s (default: hmkd.reporting.results.default_baseline)."""
    return _run_then_mark_done("auto", run_dir, lambda env: _compare(run_dir, compare, overrides or {}, baseline, env))


def _compare(run_dir: str, compare: Sequence[Tuple[str, str]], overrides: Dict[str, Any], baseline: Optional[str],
             env: DistEnv) -> Dict[str, Any]:
    from hmkd.config import config_from_dict, deep_merge
    from hmkd.config.loader import read_yaml
    from hmkd.reporting.report import write_report

    rows, trained = [], []
    for label, stage_dir in compare:
        for source in found_runs(stage_dir):
            cfg = config_from_dict(deep_merge(read_yaml(source.config), overrides))
            out_dir = os.path.join(run_dir, label, run_name(source, stage_dir))
            rows.append((label, _evaluate_into(cfg, os.path.normpath(out_dir), source.model, env), source.path))
            trained.append((label, source))
    result: Dict[str, Any] = {"stages": [label for label, _ in compare]}
    if env.is_main:
        report = write_report(RunDir(run_dir), rows, baseline, trained)
        print(report["markdown"])
        result["mIoU"] = {e["label"]: e["mIoU"] for e in report["entries"]}
    return result
