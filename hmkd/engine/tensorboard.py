"""TensorBoard event files for a run directory: the scalars of metrics.jsonl (same tags, same steps) and pictures.

Usage:
    board = open_board(RunDir(run_dir).tensorboard, first_step=step + 1, warn=logger.warning)  # None: no tensorboard
    board.scalars(12, {"loss/ce": 0.7, "lr": 0.01})
    board.image("val/prediction/a", picture_rgb, 12)        # HxWx3 uint8, stored as PNG

Written with tensorboard's record format and protos rather than torch's SummaryWriter: torch 1.11's add_image calls
Pillow API that Pillow 10 (the pinned version) removed, and one path serves both stacks. Each event is appended
whole, in the calling thread, like metrics.jsonl's lines (hmkd.atomic.append_bytes): when a call returns its event is
on disk (so everything a checkpoint covers is there before it is published), a full disk is the run's one-line
DiskFullError, and no writer thread is left to fail on its own.

Each process start opens a new event file that begins with a session START at ``first_step``: TensorBoard's Python
reader then drops whatever an earlier process of this run logged from that step on (a killed run's steps past its
checkpoint), as metrics.jsonl's resume does, so no step is shown twice; its Rust data server drops a series' later
steps whenever a step comes again, which the resumed run's first logs do.
"""
import itertools
import numbers
import os
import socket
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from hmkd.atomic import append_bytes
from hmkd.evaluation.pictures import encode_picture

_FILE_NUMBERS = itertools.count()  # tensorboard's own naming: files of one process in one second stay apart


def _event_api():
    """tensorboard's protos and record framing; ImportError when the package is missing."""
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter
    return Event, SessionLog, Summary, RecordWriter


class _Appender:
    """The file object tensorboard's RecordWriter writes each framed record to, in one call."""

    def __init__(self, path: str):
        self.path = path

    def write(self, record: bytes) -> None:
        append_bytes(self.path, record)


class EventBoard:
    """One event file of one process; only the main rank opens one."""

    def __init__(self, folder: str, first_step: int):
        self.event, session_log, self.summary, record_writer = _event_api()
        os.makedirs(folder, exist_ok=True)
        # The name TensorBoard's loaders look for. They read a folder's files in name order, which must be the order
        # they were opened in: seconds, then microseconds, both zero-padded, come before the host and process, and the
        # per-process number is zero-padded too (unpadded, a process's file 10 sorted before its file 9).
        now = time.time()
        self.path = os.path.join(folder, "events.out.tfevents.%010d.%06d.%s.%d.%06d" % (
            now, (now % 1) * 1e6, socket.gethostname(), os.getpid(), next(_FILE_NUMBERS)))
        self.records = record_writer(_Appender(self.path))
        self._add(0, file_version="brain.Event:2")
        self._add(first_step, session_log=session_log(status=session_log.START))

    def _add(self, step: int, **fields: Any) -> None:
        """One event at ``step``, stamped with the wall time TensorBoard's relative and wall-clock axes read."""
        self.records.write(self.event(step=step, wall_time=time.time(), **fields).SerializeToString())

    def scalars(self, step: int, values: Dict[str, Any]) -> None:
        """Every real number of ``values`` as a scalar named by its key; other values (text, flags) are skipped."""
        fields = [self.summary.Value(tag=tag, simple_value=float(value)) for tag, value in sorted(values.items())
                  if isinstance(value, numbers.Real) and not isinstance(value, bool)]
        if fields:
            self._add(step, summary=self.summary(value=fields))

    def image(self, tag: str, picture_rgb: np.ndarray, step: int) -> None:
        """An HxWx3 uint8 RGB picture under ``tag``, stored as PNG."""
        height, width = picture_rgb.shape[:2]
        picture = self.summary.Image(height=height, width=width, colorspace=3,
                                     encoded_image_string=encode_picture(picture_rgb))
        self._add(step, summary=self.summary(value=[self.summary.Value(tag=tag, image=picture)]))


def open_board(folder: str, first_step: int, warn: Callable[[str], None]) -> Optional[EventBoard]:
    """An ``EventBoard`` in ``folder``, or None after one warning when tensorboard is not installed: the run goes on
    with metrics.jsonl alone."""
    try:
        return EventBoard(folder, first_step)
    except ImportError as exc:
        warn("no TensorBoard event files for this run (%s); pip install tensorboard==2.14.0 to get them beside "
             "metrics.jsonl" % exc)
        return None
