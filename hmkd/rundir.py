"""The run-directory layout on shared storage: every file name a stage writes or reads is spelled here only.

Usage:
    run = RunDir("/shared/exp/hmkd/seed_0"); run.model; run.is_done(); run.read_done()
    runs = stage_runs("/shared/exp/hmkd", seeds=[0, 1])     # the run directories a stage writes
    runs = found_runs("/shared/exp/hmkd")                  # the ones already there (seed_* or the stage dir)

    <root>/<experiment>/<stage>/            a stage directory: launcher.json, submitit/ (its jobs' logs)
        [seed_<k>/]                         a run directory per seed when the stage has seeds, else the stage dir:
            config.yaml   checkpoints/   metrics.jsonl   tensorboard/   train.log   ranks.json   eval.json   model.pth
            cka.json      (distillation: teacher-student CKA at the aligned stages, start and end)
            plots/   DONE   server/   server.zip      (the last two: an evaluation with eval.server_files)
            model.onnx   model.torchscript.pt           (hmkd export: the student for deployment)
        report.md  report.json  miou.png  per_class_iou.png  loss_terms.png     (the report stage)

DONE is written last and holds the stage's result as JSON, so a reader that sees it sees a finished stage.
"""
import glob
import json
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from hmkd.atomic import atomic_write_text

SEED_PREFIX = "seed_"


class RunDir(NamedTuple):
    """One run of a stage: what the trainer, the evaluator and the report read and write."""

    path: str

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config(self) -> str:
        return self.file("config.yaml")

    @property
    def checkpoints(self) -> str:
        return self.file("checkpoints")

    @property
    def metrics(self) -> str:
        return self.file("metrics.jsonl")

    @property
    def tensorboard(self) -> str:
        """Event files beside metrics.jsonl; ``tensorboard --logdir <root>`` lists each stage and seed as a run."""
        return self.file("tensorboard")

    @property
    def train_log(self) -> str:
        return self.file("train.log")

    @property
    def ranks(self) -> str:
        """Where each rank of the latest start ran (node, host, device, rendezvous): placement is checkable."""
        return self.file("ranks.json")

    @property
    def eval_json(self) -> str:
        return self.file("eval.json")

    @property
    def cka(self) -> str:
        """Teacher-student linear CKA at the aligned stages, at step 0 and after the last step (distillation)."""
        return self.file("cka.json")

    @property
    def model(self) -> str:
        """The trained student alone (no alignment modules, no optimizer): what later stages and users load."""
        return self.file("model.pth")

    def exported(self, extension: str) -> str:
        """The student exported for deployment (``hmkd export``): model.onnx, model.torchscript.pt."""
        return self.file("model." + extension)

    @property
    def server(self) -> str:
        """Benchmark-server files (Cityscapes labelIds PNGs, ``eval.server_files``), one per image of the split."""
        return self.file("server")

    @property
    def server_zip(self) -> str:
        """The server folder's PNGs in one zip: what is uploaded."""
        return self.file("server.zip")

    @property
    def plots(self) -> str:
        return self.file("plots")

    @property
    def predictions(self) -> str:
        return os.path.join(self.plots, "predictions")

    @property
    def loss_curves(self) -> str:
        return os.path.join(self.plots, "losses.png")

    @property
    def val_curve(self) -> str:
        return os.path.join(self.plots, "val_miou.png")

    @property
    def miou_chart(self) -> str:
        return self.file("miou.png")

    @property
    def per_class_chart(self) -> str:
        return self.file("per_class_iou.png")

    @property
    def term_chart(self) -> str:
        """The distilled stages' loss-term curves, each relative to its first logged window."""
        return self.file("loss_terms.png")

    @property
    def done(self) -> str:
        return self.file("DONE")

    @property
    def report_md(self) -> str:
        return self.file("report.md")

    @property
    def report_json(self) -> str:
        return self.file("report.json")

    @property
    def launcher_state(self) -> str:
        """A stage directory's record of its submitted jobs (ids, cluster), so status works from any login node."""
        return self.file("launcher.json")

    @property
    def submitit(self) -> str:
        return self.file("submitit")

    def is_done(self) -> bool:
        return os.path.isfile(self.done)

    def read_done(self) -> Dict[str, Any]:
        with open(self.done) as handle:
            return json.load(handle)

    def mark_done(self, result: Dict[str, Any]) -> None:
        atomic_write_text(self.done, json.dumps(result, sort_keys=True) + "\n")


def seed_dir(stage_dir: str, seed: int) -> str:
    return os.path.join(stage_dir, "%s%d" % (SEED_PREFIX, seed))


def stage_runs(stage_dir: str, seeds: Optional[Sequence[int]] = None) -> List[RunDir]:
    """The run directories a stage writes: one per seed, or the stage directory itself."""
    return [RunDir(seed_dir(stage_dir, s)) for s in seeds] if seeds else [RunDir(stage_dir)]


def found_runs(stage_dir: str) -> List[RunDir]:
    """The run directories a finished stage left: its seed_* folders, or the stage directory itself."""
    seeds = sorted(d for d in glob.glob(os.path.join(stage_dir, SEED_PREFIX + "*")) if os.path.isdir(d))
    return [RunDir(d) for d in seeds] or [RunDir(stage_dir)]


def run_name(run: RunDir, stage_dir: str) -> str:
    """A run's name inside its stage ('' for the stage directory itself, else seed_<k>)."""
    return "" if os.path.normpath(run.path) == os.path.normpath(stage_dir) else os.path.basename(run.path)
