"""Atomic checkpoints in a run directory: step files, a ``latest`` pointer, the last k kept plus the best.

Usage:
    manager = CheckpointManager(run_dir / "checkpoints", keep=3)
    manager.save(state_dict, step=1000, metric=0.71)      # rank 0 only
    state = manager.load_latest(required=("model",))     # None when the run is fresh
    manager.loaded, manager.skipped                      # the file it loaded; damaged ones passed over, and why

Every file is written atomically (hmkd.atomic), so a kill at any moment leaves either the old or the new file, never a
torn one. The pointer is updated only after the step file is complete, so ``latest`` always names a whole checkpoint.
Files damaged anyway (a disk or copy that lost data, a hand edit) are passed over on load, newest step first.
"""
import io
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

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
        self.loaded: Optional[str] = None  # what load_latest returned, and what it passed over (path, why)
        self.skipped: List[Tuple[str, str]] = []

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
        try:
            with open(path) as handle:
                best = json.load(handle)
        except ValueError as exc:
            best = "%s: %s" % (type(exc).__name__, _first_line(exc))
        if not isinstance(best, dict) or not {"step", "metric"} <= set(best):
            raise ValueError("%s is not a best-checkpoint record (%s); remove it (the next evaluation records the best "
                             "again)" % (path, best if isinstance(best, str) else "no step and metric"))
        return best

    def save(self, state: Dict[str, Any], step: int, metric: Optional[float] = None) -> str:
        """Write the step file, then the pointer; record it as best when ``metric`` beats the best so far."""
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.step_path(step)
        atomic_write_bytes(path, buffer.getvalue())
        self.point_latest_at(path)
        best = self.best()
        if metric is not None and (best is None or metric > best["metric"]):
            atomic_write_text(os.path.join(self.folder, BEST), json.dumps({"step": step, "metric": metric,
                                                                           "file": os.path.basename(path)}))
        self._prune()
        return path

    def point_latest_at(self, path: str) -> None:
        atomic_write_text(os.path.join(self.folder, LATEST), os.path.basename(path) + "\n")

    def latest_path(self) -> Optional[str]:
        """The step file ``latest`` names; None when there is no pointer or it names no step file."""
        return self._pointer()[0]

    def _pointer(self) -> Tuple[Optional[str], Optional[str]]:
        """(the step file ``latest`` names, None) or (None, what is wrong with the pointer; None for a fresh run)."""
        pointer = os.path.join(self.folder, LATEST)
        if not os.path.isfile(pointer):
            return None, "is missing" if self.steps() else None
        try:
            with open(pointer, "rb") as handle:
                name = handle.read(256).decode("utf-8", errors="replace").strip()
        except OSError as exc:
            return None, "cannot be read (%s)" % exc
        if not name:
            return None, "is empty"
        if not _STEP_FILE.match(name):
            return None, "names %r, which is not a step file" % name[:60]
        path = os.path.join(self.folder, name)
        if not os.path.isfile(path):
            return None, "names %s, which does not exist" % name
        return path, None

    def load_latest(self, required: Sequence[str] = (), repair: bool = False) -> Optional[Dict[str, Any]]:
        """The newest checkpoint that loads and holds the ``required`` keys: the one ``latest`` names, else the step
        files newest first; None for a fresh folder. Damaged files are passed over and listed in ``skipped`` as
        (path, why), ``loaded`` is the file returned; ``repair`` (the main process) then points ``latest`` at it.
        When something was there but nothing loads, a ValueError names them all: starting over silently would
        throw the run away."""
        self.loaded, self.skipped = None, []
        named, problem = self._pointer()
        if problem:
            self.skipped.append((os.path.join(self.folder, LATEST), problem))
        candidates = [named] if named else []
        candidates += [p for p in map(self.step_path, reversed(self.steps())) if p != named]
        for path in candidates:
            state, problem = _read_checkpoint(path, required)
            if problem is None:
                self.loaded = path
                if repair and self.skipped:
                    self.point_latest_at(path)
                return state
            self.skipped.append((path, problem))
        if self.skipped:
            raise ValueError("no readable checkpoint in %s (%s); remove that folder to start over, or put an intact "
                             "step file back" % (self.folder, "; ".join("%s %s" % (os.path.basename(p), why)
                                                                      for p, why in self.skipped)))
        return None

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


def _read_checkpoint(path: str, required: Sequence[str]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(state, None), or (None, why the file is no checkpoint): any failure to load counts, since a torn or
    overwritten file shows up as whatever error torch or pickle meets first."""
    try:
        if os.path.getsize(path) == 0:
            return None, "is empty"
        state = torch_load(path)
    except Exception as exc:  # truncated zip, bad pickle, I/O error: all mean "not loadable"
        return None, "cannot be loaded (%s: %s)" % (type(exc).__name__, _first_line(exc))
    if not isinstance(state, dict):
        return None, "holds a %s, not a checkpoint" % type(state).__name__
    missing = [key for key in required if key not in state]
    if missing:
        return None, "lacks %s" % ", ".join(missing)
    return state, None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:160] if lines else ""
