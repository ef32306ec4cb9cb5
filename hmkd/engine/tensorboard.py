"""TensorBoard event files for a run directory: the scalars of metrics.jsonl (same tags, same steps) and pictures.

Usage:
    board = open_board(RunDir(run_dir).tensorboard, first_step=step + 1, warn=logger.warning)  # None: no tensorboard
    board.scalars(12, {"loss/ce": 0.7, "lr": 0.01})
    board.image("val/prediction/a", picture_rgb, 12)        # HxWx3 uint8, stored as PNG
    board.flush()   # before a checkpoint is published, so the events it covers are on disk
    board.close()

Written with tensorboard's own event writer and protos rather than torch's SummaryWriter: torch 1.11's add_image
calls Pillow API that Pillow 10 (the pinned version) removed, and one path serves both stacks. Each process start
opens a new event file that begins with a session START at ``first_step``: TensorBoard's Python reader then drops
whatever an earlier process of this run logged from that step on (a killed run's steps past its checkpoint), as
metrics.jsonl's resume does, so no step is shown twice; its Rust data server drops a series' later steps whenever a
step comes again, which the resumed run's first logs do.
"""
import numbers
import os
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from hmkd.evaluation.pictures import encode_picture


def _event_api():
    """tensorboard's writer and protos; ImportError when the package is missing."""
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    return EventFileWriter, Event, SessionLog, Summary


class EventBoard:
    """One event file of one process; only the main rank opens one."""

    def __init__(self, folder: str, first_step: int):
        writer_class, self.event, session_log, self.summary = _event_api()
        os.makedirs(folder, exist_ok=True)
        self.writer = writer_class(folder)
        self._add(first_step, session_log=session_log(status=session_log.START))

    def _add(self, step: int, **fields: Any) -> None:
        """One event at ``step``, stamped with the wall time TensorBoard's relative and wall-clock axes read."""
        self.writer.add_event(self.event(step=step, wall_time=time.time(), **fields))

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

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_board(folder: str, first_step: int, warn: Callable[[str], None]) -> Optional[EventBoard]:
    """An ``EventBoard`` in ``folder``, or None after one warning when tensorboard is not installed: the run goes on
    with metrics.jsonl alone."""
    try:
        return EventBoard(folder, first_step)
    except ImportError as exc:
        warn("no TensorBoard event files for this run (%s); pip install tensorboard==2.14.0 to get "
             "them beside metrics.jsonl" % exc)
        return None
