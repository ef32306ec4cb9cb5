"""Training logs: ``metrics.jsonl`` (one line per logged step), the same scalars as TensorBoard events, a plain log
file, and a live line on a terminal.

Usage:
    logger = MetricsLogger(run_dir, total_steps, is_main)
    logger.start(step)                                      # after resume: the clock and the event file start here
    logger.log_step(step, {"loss/ce": 0.7, "lr": 0.01}, images_per_s=12.3)
    evaluate(..., picture_sink=logger.picture_sink(step))   # prediction pictures into TensorBoard
    logger.warning("checkpoint ... cannot be loaded; resuming from ... instead")    # train.log and stderr

Lines and events are appended whole or not at all (hmkd.atomic); a full disk stops the run with DiskFullError.
"""
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from hmkd.atomic import append_text, atomic_write_text
from hmkd.engine.tensorboard import EventBoard, open_board
from hmkd.rundir import RunDir


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:  # a line cut by a kill mid-write: skip it, the rest is good
                    continue
    return rows


class MetricsLogger:
    def __init__(self, run_dir: str, total_steps: int, enabled: bool = True, stream=None):
        self.enabled = enabled
        self.total_steps = total_steps
        self.metrics_path = RunDir(run_dir).metrics
        self.log_path = RunDir(run_dir).train_log
        self.tensorboard_dir = RunDir(run_dir).tensorboard
        self.board: Optional[EventBoard] = None
        self.stream = stream or sys.stdout
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.time()
        self.start_step: Optional[int] = None

    def message(self, text: str, stream=None) -> None:
        if not self.enabled:
            return
        line = "%s %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), text)
        append_text(self.log_path, line + "\n")
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
        stream = stream or self.stream
        stream.write(line + "\n")
        stream.flush()

    def warning(self, text: str) -> None:
        """Something the user should act on: in train.log and on stderr, where it is not lost among the steps."""
        self.message("WARNING " + text, stream=sys.stderr)

    def start(self, step: int) -> None:
        """The clock for images/s and ETA starts here, at the first step this process runs, and so does this
        process's event file, which hides what an earlier process logged past ``step`` (see drop_after)."""
        self.start_step, self.started = step, time.time()
        if self.enabled and self.board is None:
            self.board = open_board(self.tensorboard_dir, step + 1, self.warning)

    @property
    def running(self) -> bool:
        """Whether start() has run: diagnostics that write records are taken only inside a run."""
        return self.start_step is not None

    def picture_sink(self, step: int, prefix: str = "val/prediction/") -> Optional[Callable[[str, np.ndarray], None]]:
        """evaluate()'s ``picture_sink``: each picture as a TensorBoard image ``<prefix><name>`` at ``step``; None
        where no event file is written (other ranks, no tensorboard), so no picture is made for nothing."""
        board = self.board
        if board is None:
            return None
        return lambda name, picture_rgb: board.image(prefix + name, picture_rgb, step)

    def drop_after(self, step: int) -> None:
        """After a resume from ``step``, forget lines the killed run logged past it (they will be logged again)."""
        if not self.enabled:
            return
        rows = [r for r in read_jsonl(self.metrics_path) if r.get("step", 0) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def log(self, record: Dict[str, Any]) -> None:
        """One line of metrics.jsonl; its numbers also as TensorBoard scalars, same tags, at its ``step``."""
        if self.enabled:
            append_text(self.metrics_path, json.dumps(record, sort_keys=True) + "\n")
            if self.board is not None and "step" in record:
                self.board.scalars(record["step"], {k: v for k, v in record.items() if k != "step"})

    def log_step(self, step: int, values: Dict[str, float], images_per_s: float) -> None:
        if not self.enabled:
            return
        done = step - (self.start_step or 0)
        eta_s = (time.time() - self.started) / max(done, 1) * (self.total_steps - step)
        record = dict(values, step=step, images_per_s=round(images_per_s, 3), eta_s=round(eta_s, 1))
        self.log(record)
        terms = " ".join("%s %.4f" % (k, v) for k, v in sorted(values.items()) if k != "lr")
        text = "step %d/%d  %s  lr %.3g  %.1f img/s  eta %s" % (step, self.total_steps, terms, values.get("lr", 0),
                                                               images_per_s, _hms(eta_s))
        append_text(self.log_path, "%s %s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), text))
        if self.live:
            bar = int(30 * step / self.total_steps)
            self.stream.write("\r\033[K[%s%s] %s" % ("#" * bar, "." * (30 - bar), text))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return "%d:%02d:%02d" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)
