"""Atomic checkpoints in a run directory: step files, a ``latest`` pointer, the last k kept plus the best.

Usage:
    manager = CheckpointManager(run_dir / "checkpoints", keep=3)
    manager.save(state_dict, step=1000, metric=0.71)      # rank 0 only
    state = manager.load_latest()                        # None when the run is fresh

Every file is written atomically (hmkd.atomic), so a kill at any moment leaves either the old or the new file, never a torn one. The pointer
is updated only after the step file is complete, so ``latest`` always names a whole checkpoint.
"""
import io
import json
import os
import re
from typing import Any, Dict, List, Optional

import torch

from hmkd.atomic import atomic_write_bytes, atomic_write_text
from hmkd.compat import torch_load

_STEP_FILE = re.compile(r"^step_(\d+)\.pth$")
LATEST = "latest"
BEST = "best.json"


class CheckpointManager:
    def __init__(self, folder: str, keep: int = 3):
        if keep < 1:
            raise ValueError("train.keep_checkpoints must be >= 1, got %r" % keep)
        self.folder = folder
        self.keep = keep

    def step_path(self, step: int) -> str:
        return os.path.join(self.folder, "step_%08d.pth" % step)

    def steps(self) -> List[int]:
        if not os.path.isdir(self.folder):
            return []
        return sorted(int(m.group(1)) for m in map(_STEP_FILE.match, os.listdir(self.folder)) if m)

    def best(self) -> Optional[Dict[str, Any]]:
        path = os.path.join(self.folder, BEST)
        if not os.path.isfile(path):
            return None
        with open(path) as handle:
            return json.load(handle)

    def save(self, state: Dict[str, Any], step: int, metric: Optional[float] = None) -> str:
        """Write the step file, then the pointer; record it as best when ``metric`` beats the best so far."""
        os.makedirs(self.folder, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.step_path(step)
        atomic_write_bytes(path, buffer.getvalue())
        atomic_write_text(os.path.join(self.folder, LATEST), os.path.basename(path) + "\n")
        best = self.best()
        if metric is not None and (best is None or metric > best["metric"]):
            atomic_write_text(os.path.join(self.folder, BEST), json.dumps({"step": step, "metric": metric,
                                                                           "file": os.path.basename(path)}))
        self._prune()
        return path

    def latest_path(self) -> Optional[str]:
        pointer = os.path.join(self.folder, LATEST)
        if not os.path.isfile(pointer):
            return None
        with open(pointer) as handle:
            name = handle.read().strip()
        path = os.path.join(self.folder, name)
        if not _STEP_FILE.match(name) or not os.path.isfile(path):
            raise ValueError("checkpoint pointer %s names %r, which is not a checkpoint in that folder; remove the "
                             "pointer to start over or restore the file" % (pointer, name))
        return path

    def load_latest(self) -> Optional[Dict[str, Any]]:
        path = self.latest_path()
        return torch_load(path) if path else None

    def _prune(self) -> None:
        best = self.best()
        protected = {best["step"]} if best else set()
        steps = self.steps()
        for step in steps[:-self.keep]:
            if step not in protected:
                os.remove(self.step_path(step))

    def remove_stale_temp_files(self) -> None:
        """Temp files left by a writer killed mid-write; call at start, before this run writes anything."""
        if os.path.isdir(self.folder):
            for name in os.listdir(self.folder):
                if name.startswith(".") and ".tmp." in name:
                    os.remove(os.path.join(self.folder, name))
