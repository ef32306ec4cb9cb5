"""The one training loop: teacher pretraining, baselines and distillation all run here.

Usage: result = train(cfg, run_dir)      # resumes from run_dir/checkpoints when a checkpoint is there

Distillation is this loop with a frozen teacher whose outputs are handed to the criterion; there is no branch per
method. The student and the criterion (whose terms may own alignment modules) form one trainable module: DDP wraps
it, the optimizer trains it and checkpoints save it. The teacher stays outside.
"""
import io
import json
import math
import os
import random
import logging
import time
from contextlib import nullcontext
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from hmkd import __version__
from hmkd.config import ExperimentConfig
from hmkd.config.schema import resolve_normalization
from hmkd.data import build_dataset, build_unlabeled, renormalizer, with_unlabeled
from hmkd.atomic import atomic_write_bytes, atomic_write_text
from hmkd.compat import HAS_MODULE_COMPILE, grad_scaler
from hmkd.engine.checkpoint import CheckpointManager
from hmkd.engine.cka_probe import aligned_stages, probe_cka, record_cka, stage_taps
from hmkd.engine.distributed import DistEnv, describe_placement, init_distributed, placement, rank_ordered_mean
from hmkd.engine.grad_share import (GRAD_NORM, GRAD_SHARE, grad_share_due, gradient_shares, switched_off,
                                    term_gradient_norms)
from hmkd.engine.logger import MetricsLogger
from hmkd.engine.optim import build_optimizer, build_scheduler
from hmkd.engine.precision import resolve_precision
from hmkd.engine.preemption import PreemptionWatch
from hmkd.engine.sampler import ResumableSampler
from hmkd.evaluation import evaluate, format_table
from hmkd.evaluation.checkpoint import record_for
from hmkd.losses import build_criterion
from hmkd.losses.criterion import TermContext
from hmkd.models import build_model, load_pretrained
from hmkd.reporting.plots import plot_run
from hmkd.rundir import RunDir

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the run stops and the latest checkpoint stays the last good one."""


class TrainableModule(nn.Module):
    """Student + criterion: everything the optimizer updates and the checkpoint restores. The student is asked for
    the attention taps the criterion's terms read (hmkd.models.output.Tap)."""

    def __init__(self, student: nn.Module, criterion: nn.Module):
        super().__init__()
        self.student = student
        self.criterion = criterion
        self.student_taps = criterion.taps("student") if hasattr(criterion, "taps") else ()

    def forward(self, images: Tensor, labels: Tensor, teacher_out=None) -> Dict[str, Tensor]:
        return self.criterion(self.student(images, taps=self.student_taps), labels, teacher_out)

    def sync_batchnorm(self, student: bool) -> None:
        """SyncBN where it is asked for: in the student when ``student`` (``train.sync_bn``), and in each term
        whose ``sync_bn`` is not False (the HMKD authors' alignment modules keep per-GPU statistics)."""
        if student:
            self.student = nn.SyncBatchNorm.convert_sync_batchnorm(self.student)
        terms = self.criterion.terms
        for name in list(terms):
            if getattr(terms[name], "sync_bn", True):
                terms[name] = nn.SyncBatchNorm.convert_sync_batchnorm(terms[name])


def build_teacher(cfg: ExperimentConfig, num_classes: int) -> Optional[nn.Module]:
    """The frozen teacher, loaded strictly from its checkpoint; None when the config names none."""
    if cfg.teacher is None:
        return None
    teacher = build_model(cfg.teacher.name, num_classes, **cfg.teacher.options)
    load_pretrained(teacher, cfg.teacher.checkpoint, sha256=cfg.teacher.checkpoint_sha256, strict=True)
    teacher.eval()
    for param in teacher.parameters():
        param.requires_grad_(False)
    return teacher


def seed_everything(seed: int, rank: int, deterministic: bool) -> None:
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def rng_state() -> Dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_objects(obj: Any, env: DistEnv) -> list:
    if env.world_size == 1:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


class Trainer:
    def __init__(self, cfg: ExperimentConfig, run_dir: str, env: Optional[DistEnv] = None):
        cfg = resolve_normalization(cfg)  # the data is normalised for the student; the saved config says how
        self.cfg = cfg
        self.run_dir = run_dir
        self.files = RunDir(run_dir)
        self.env = env or init_distributed(cfg.train.device)
        t = cfg.train
        seed_everything(t.seed, self.env.rank, t.deterministic)
        self.device = self.env.device
        self.train_set = build_dataset(cfg.data, split="train", train=True, seed=t.seed)
        self.unlabeled_set = build_unlabeled(cfg.data, self.train_set)  # None without data.unlabeled
        self.val_set = build_dataset(cfg.data, split=cfg.eval.split, train=False, validate="none")
        self.num_classes = self.train_set.num_classes
        student = build_model(cfg.model.name, self.num_classes, pretrained=cfg.model.pretrained,
                              pretrained_sha256=cfg.model.pretrained_sha256, **cfg.model.options)
        self.teacher = build_teacher(cfg, self.num_classes)
        criterion = build_criterion(cfg.loss.terms, TermContext(student, self.teacher, self.train_set.ignore_index))
        self.module = TrainableModule(student, criterion)
        self.teacher_logits = criterion.needs_teacher_logits
        self.teacher_taps = criterion.taps("teacher")
        if self.teacher is not None and not self.teacher_logits:
            log.info("no loss term reads the teacher's logits: its decode head is skipped")
        if self.env.world_size > 1 and self.device.type == "cuda":
            self.module.sync_batchnorm(t.sync_bn)
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        self.module.to(self.device, memory_format=self.memory_format)
        # The teacher's input from the student's batch when their weights expect different normalisations.
        self.teacher_input = renormalizer(cfg.data.normalize, cfg.teacher.normalize) if cfg.teacher else None
        if self.teacher is not None:
            self.teacher.to(self.device, memory_format=self.memory_format)
        if self.teacher_input is not None:
            self.teacher_input.to(self.device)
        if t.compile:
            self.compile_student()
        self.wrapped = self.module
        if self.env.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped = DistributedDataParallel(self.module, device_ids=device_ids)
            if t.deterministic:
                self.wrapped.register_comm_hook(None, rank_ordered_mean)
        self.optimizer = build_optimizer(self.module, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule)
        self.precision = resolve_precision(t.amp or None, self.device, "train.amp", self.warn)
        self.teacher_precision = resolve_precision((cfg.teacher.amp or None) if cfg.teacher else None, self.device,
                                                   "teacher.amp", self.warn)
        self.scaler = grad_scaler(self.precision.needs_scaler)
        self.sampler = ResumableSampler(len(self.train_set), t.batch_size, self.env.rank, self.env.world_size, t.seed,
                                        len(self.unlabeled_set or ()), cfg.data.unlabeled_batch(t.batch_size))
        loader_rng = torch.Generator()  # keeps worker seeding off the global RNG, which resume restores exactly
        loader_rng.manual_seed(t.seed)
        self.loader = DataLoader(with_unlabeled(self.train_set, self.unlabeled_set), batch_sampler=self.sampler,
                                 num_workers=t.num_workers, pin_memory=self.device.type == "cuda",
                                 persistent_workers=t.num_workers > 0, generator=loader_rng)
        self.checkpoints = CheckpointManager(self.files.checkpoints, keep=t.keep_checkpoints)
        self.logger = MetricsLogger(run_dir, cfg.schedule.max_iters, enabled=self.env.is_main)
        self.step = 0
        self.epoch = 0
        self.consumed = 0
        self.unlabeled_position = (0, 0)  # the unlabelled stream's (epoch, consumed), which wraps on its own
        self.train_seconds = 0.0  # summed over every process lifetime of this run (requeues included)
        self._clock = time.time()
        self.preemption = PreemptionWatch()
        self.stop_requested = False
        self.reported_switched_off: set = set()  # terms already named in train.log as switched off by their scale

    def warn(self, message: str) -> None:
        if self.env.is_main:
            log.warning(message)

    def compile_student(self) -> None:
        """torch.compile of the student in place (``nn.Module.compile``): its parameters and state-dict keys stay
        as they are, so checkpoints do not depend on the switch. The criterion and the teacher stay eager."""
        if not HAS_MODULE_COMPILE:
            self.warn("train.compile needs torch >= 2.2 (this is torch %s); the student runs eagerly"
                      % torch.__version__)
            return
        self.module.student.compile()

    # ----------------------------------------------------------------- state
    def elapsed(self) -> float:
        return self.train_seconds + time.time() - self._clock

    def state_dict(self) -> Dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "consumed": self.consumed, "train_seconds": self.elapsed(),
                "model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "world_size": self.env.world_size, "hmkd_version": __version__, "config": self.cfg.to_dict(),
                **self.unlabeled_state()}

    def unlabeled_state(self) -> Dict[str, Any]:
        """The unlabelled stream's position for the checkpoint; nothing without data.unlabeled, so such checkpoints
        are what they were."""
        if self.unlabeled_set is None:
            return {}
        epoch, consumed = self.unlabeled_position
        return {"unlabeled": {"epoch": epoch, "consumed": consumed, "images": len(self.unlabeled_set)}}

    def restore_unlabeled(self, saved: Optional[Dict[str, Any]]) -> None:
        """The unlabelled stream resumes where it was; a checkpoint and a config that disagree on having unlabelled
        images (or on how many) cannot continue its order, which is said in one line."""
        count, saved_count = len(self.unlabeled_set or ()), (saved or {}).get("images", 0)
        if saved_count != count:
            raise ValueError("data.unlabeled: the checkpoint %s was trained with %d unlabelled images, the config "
                             "gives %d; set data.unlabeled as that run had it, or start a new run directory"
                             % (self.checkpoints.loaded, saved_count, count))
        if saved:
            self.unlabeled_position = self.sampler.unlabeled_resumed((saved["epoch"], saved["consumed"]))

    def save(self, metric: Optional[float] = None) -> None:
        rngs = gather_objects(rng_state(), self.env)  # every rank's RNG, so each resumes its own stream
        if self.env.is_main:
            state = self.state_dict()
            state["rng"] = rngs
            self.checkpoints.save(state, self.step, metric)
        if self.env.world_size > 1:
            dist.barrier()

    def resume(self) -> bool:
        """Restore everything from the newest checkpoint that loads; damaged ones are passed over with a warning."""
        if self.env.is_main:
            self.checkpoints.remove_stale_temp_files()
        needs = ("model", "optimizer", "scheduler", "scaler", "step", "epoch", "consumed", "train_seconds",
                 "world_size", "rng")
        state = self.checkpoints.load_latest(required=needs, repair=self.env.is_main)
        if state is None:
            return False
        for path, problem in self.checkpoints.skipped:
            self.logger.warning("checkpoint %s %s; resuming from %s instead" % (path, problem, self.checkpoints.loaded))
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.step, self.epoch, self.consumed = state["step"], state["epoch"], state["consumed"]
        self.restore_unlabeled(state.get("unlabeled"))
        self.train_seconds, self._clock = state["train_seconds"], time.time()
        if state["world_size"] == self.env.world_size:
            set_rng_state(state["rng"][self.env.rank])
        else:
            self.logger.message("resuming a %d-process run with %d processes: data order continues, random streams "
                                "are reseeded" % (state["world_size"], self.env.world_size))
            seed_everything(self.cfg.train.seed + self.step, self.env.rank, self.cfg.train.deterministic)
        self.logger.drop_after(self.step)
        self.logger.message("resumed from step %d (%s)" % (self.step, self.checkpoints.loaded))
        return True

    # ----------------------------------------------------------------- loop
    def batches(self):
        while True:
            self.sampler.set_position(self.epoch, self.consumed, self.unlabeled_position)
            for batch in self.loader:  # counted as they arrive: the loader's workers run ahead of the sampler
                self.consumed += 1
                self.unlabeled_position = self.sampler.unlabeled_after(self.unlabeled_position)
                yield batch
            self.epoch, self.consumed = self.epoch + 1, 0

    def train_step(self, batches) -> Dict[str, float]:
        t = self.cfg.train
        self.optimizer.zero_grad(set_to_none=True)
        sums: Dict[str, float] = {}
        for micro in range(t.grad_accum):
            batch = next(batches)
            images = batch["image"].to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            labels = batch["label"].to(self.device, non_blocking=True)
            sync = micro == t.grad_accum - 1 or self.env.world_size == 1
            with (nullcontext() if sync else self.wrapped.no_sync()):
                teacher_out = None
                if self.teacher is not None:
                    with torch.no_grad(), self.teacher_precision.autocast():
                        teacher_out = self.teacher(self.renormalized(images), with_logits=self.teacher_logits,
                                                   taps=self.teacher_taps)
                    if self.teacher_precision.dtype is not None:
                        teacher_out = teacher_out.float()
                with self.precision.autocast():
                    terms = self.wrapped(images, labels, teacher_out)
                values = self.check_finite(terms)
                if micro == 0 and self.logger.running and grad_share_due(self.step + 1, t.grad_share_interval):
                    self.record_grad_shares(terms)
                total = sum(terms.values())
                self.scaler.scale(total / t.grad_accum).backward()
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value / t.grad_accum
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return sums

    def record_grad_shares(self, terms: Dict[str, Tensor]) -> None:
        """Each term's gradient norm on the student's parameters and its share of all terms' (hmkd.engine.grad_share)
        into metrics.jsonl and TensorBoard at this step; a term below 1% is named in train.log once. Every rank
        measures (SyncBN's backward is a collective) and the norms are averaged over the ranks."""
        scale = self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        params = [p for p in self.module.student.parameters() if p.requires_grad]
        norms = term_gradient_norms(terms, params, scale)
        if self.env.world_size > 1:
            stacked = torch.tensor(list(norms.values()), dtype=torch.float64, device=self.device)
            dist.all_reduce(stacked)
            norms = {name: value / self.env.world_size for name, value in zip(norms, stacked.tolist())}
        shares = gradient_shares(norms)
        step = self.step + 1
        record: Dict[str, Any] = {"step": step}
        record.update({GRAD_SHARE + name: share for name, share in shares.items()})
        record.update({GRAD_NORM + name: norm for name, norm in norms.items()})
        self.logger.log(record)
        largest = max(norms, key=norms.get)
        for name in switched_off(shares):
            if name not in self.reported_switched_off:
                self.reported_switched_off.add(name)
                self.logger.message("loss term %s is present but switched off by its scale: %.3g%% of the student's "
                                    "gradient at step %d (norm %.3g; %s %.3g)" % (
                                        name, 100 * shares[name], step, norms[name], largest, norms[largest]))

    def renormalized(self, images: Tensor) -> Tensor:
        """The student's batch as the teacher's weights expect it; the same tensor when both expect the same."""
        if self.teacher_input is None:
            return images
        return self.teacher_input(images).contiguous(memory_format=self.memory_format)

    def deterministic_step(self, batches) -> Dict[str, float]:
        """A train step; under ``train.deterministic`` torch raises at an op that has no deterministic kernel on
        this device (on CUDA: bilinear interpolation, adaptive pooling, NLL and grid_sample backward, among others):
        that is said in one line with the way out, not as a traceback from autograd."""
        try:
            return self.train_step(batches)
        except RuntimeError as exc:
            if "does not have a deterministic implementation" not in str(exc):
                raise
            raise ValueError("train.deterministic: %s on %s (torch %s); set train.deterministic=false (resume stays "
                             "exact in data order, RNG and weights, but not bitwise)"
                             % (str(exc).splitlines()[0].split(", but you set")[0], self.device, torch.__version__))

    def check_finite(self, terms: Dict[str, Tensor]) -> Dict[str, float]:
        """Rank-averaged term values; every rank sees the same numbers, so all stop together on NaN/inf. The same
        all-reduce carries the preemption flag, so all ranks agree on the step at which they save and leave."""
        flag = torch.tensor([float(self.preemption.requested)], device=self.device)
        stacked = torch.cat([torch.stack([v.detach().float() for v in terms.values()]), flag])
        if self.env.world_size > 1:
            dist.all_reduce(stacked)
        *sums, flags = stacked.tolist()
        self.stop_requested = flags > 0
        values = {name: value / self.env.world_size for name, value in zip(terms, sums)}
        bad = [name for name, value in values.items() if not math.isfinite(value)]
        if bad:
            latest = self.checkpoints.latest_path()
            raise NonFiniteLossError("loss term %s is %s at step %d; the latest checkpoint (%s) is the last good one; "
                                     "lower optim.lr or check the data" % (bad[0], values[bad[0]], self.step + 1,
                                                                           latest or "none yet"))
        return values

    def run(self) -> Dict[str, Any]:
        t, total_steps = self.cfg.train, self.cfg.schedule.max_iters
        ranks = gather_objects(placement(self.env), self.env)
        if self.env.is_main:
            os.makedirs(self.run_dir, exist_ok=True)
            atomic_write_text(self.files.config, yaml.safe_dump(self.cfg.to_dict(), sort_keys=False))
            atomic_write_text(self.files.ranks, json.dumps(ranks, indent=1) + "\n")
        self.logger.message(describe_placement(ranks))
        for name, term in self.module.criterion.terms.items():
            options = term.extra_repr()
            self.logger.message("loss term %s: weight %g%s" % (name, self.module.criterion.weights[name],
                                                              "; " + options if options else ""))
        self.resume()
        global_batch = t.batch_size * self.env.world_size * t.grad_accum
        self.logger.message("training %s for %d steps (global batch %d = %d x %d processes x %d accumulation) on %s"
                            % (self.cfg.model.name, total_steps, global_batch, t.batch_size, self.env.world_size,
                               t.grad_accum, self.device))
        if self.unlabeled_set is not None:
            self.logger.message(self.sampler.describe())
        self.module.train()
        if self.teacher is not None:
            self.teacher.eval()
        if self.step == 0:  # a resumed run keeps the start values it wrote
            self.record_cka("start")
        batches = self.batches()
        self.logger.start(self.step)
        window: Dict[str, float] = {}
        window_steps, tic = 0, time.time()
        while self.step < total_steps:
            values = self.deterministic_step(batches)
            for name, value in values.items():
                window[name] = window.get(name, 0.0) + value
            window_steps += 1
            if self.step % t.log_interval == 0 or self.step == total_steps:
                logged = {"loss/" + k: v / window_steps for k, v in window.items()}
                logged["loss/total"] = sum(logged.values())
                logged["lr"] = self.optimizer.param_groups[0]["lr"]
                self.logger.log_step(self.step, logged, global_batch * window_steps / (time.time() - tic))
                window, window_steps, tic = {}, 0, time.time()
            metric = None
            if t.eval_interval and self.step % t.eval_interval == 0 and self.step < total_steps:
                metric = self.validate()["mIoU"]
            if self.step % t.checkpoint_interval == 0 or metric is not None or self.stop_requested:
                self.save(metric)
            if self.stop_requested:
                self.logger.message("preemption signal: checkpoint saved at step %d; handing over" % self.step)
                self.shutdown_loader(batches)
                self.preemption.hand_over()
                raise SystemExit(0)  # non-zero ranks (submitit requeues from rank 0) and handlers that return
        self.preemption.restore()
        return self.finish()

    def shutdown_loader(self, batches) -> None:
        """Stop DataLoader workers now: leftovers after a requeue have drained cluster nodes."""
        batches.close()
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    def validate(self, out_dir: Optional[str] = None) -> Dict[str, Any]:
        self.module.eval()
        metrics = evaluate(self.module.student, self.val_set, self.cfg.eval, self.device, self.env.rank,
                           self.env.world_size, out_dir=out_dir, picture_sink=self.logger.picture_sink(self.step))
        self.module.train()
        self.logger.log({"step": self.step, "val/mIoU": metrics["mIoU"], "val/aAcc": metrics["aAcc"]})
        self.logger.message("step %d: val mIoU %.2f%%, aAcc %.2f%%" % (self.step, 100 * metrics["mIoU"],
                                                                       100 * metrics["aAcc"]))
        return metrics

    def record_cka(self, when: str) -> None:
        """Teacher-student CKA at the aligned stages on the first ``train.cka_images`` validation images, into
        cka.json (hmkd.engine.cka_probe). Rank 0 alone: the probe runs no collective, the other ranks go on."""
        count = min(self.cfg.train.cka_images, len(self.val_set))
        stages = aligned_stages(self.module.criterion)
        if not (self.env.is_main and self.teacher is not None and stages and count):
            return
        tic = time.time()

        taps = stage_taps(self.module.criterion)

        def teacher_features(images: Tensor):
            with self.teacher_precision.autocast():
                return self.teacher(self.renormalized(images), with_logits=False,
                                    taps=[pair["teacher"] for pair in taps.values()]).float()

        images = (self.val_set[i]["image"].unsqueeze(0).to(self.device).contiguous(memory_format=self.memory_format)
                  for i in range(count))
        values = probe_cka(self.module.student, teacher_features, images, stages, self.precision.autocast, taps)
        record_cka(self.files.cka, when, values, count, stages, self.step)
        self.logger.message("CKA teacher-student at step %d (%d validation images): %s (%.1f s)" % (
            self.step, count, ", ".join("%s %s (%s)" % (key, "-" if v is None else "%.3f" % v, "+".join(stages[key]))
                                        for key, v in values.items()), time.time() - tic))

    def finish(self) -> Dict[str, Any]:
        """Final evaluation, checkpoint, model.pth (the student alone, no alignment modules), eval.json, plots; the
        caller writes DONE after this."""
        metrics = self.validate(out_dir=self.files.predictions)
        self.save(metrics["mIoU"])
        self.record_cka("end")
        if self.env.is_main:
            buffer = io.BytesIO()
            torch.save({"model": self.module.student.state_dict(), "model_name": self.cfg.model.name,
                        "num_classes": self.num_classes, "normalize": self.cfg.model.normalize, "step": self.step,
                        "hmkd_version": __version__}, buffer)
            atomic_write_bytes(self.files.model, buffer.getvalue())
            record = record_for(self.cfg, self.module.student, self.val_set, metrics, self.files.model, self.step,
                                self.elapsed())
            record.write(self.files.eval_json)
            self.logger.message("final evaluation (%s split, %d images):\n%s" % (
                self.cfg.eval.split, len(self.val_set), format_table(record)))
            plot_run(self.files)
        return {"step": self.step, "mIoU": metrics["mIoU"], "aAcc": metrics["aAcc"],
                "train_seconds": round(self.elapsed(), 1)}


def train(cfg: ExperimentConfig, run_dir: str, env: Optional[DistEnv] = None) -> Dict[str, Any]:
    return Trainer(cfg, run_dir, env).run()
