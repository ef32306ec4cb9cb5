"""The trainer's CKA probe: teacher-student linear CKA at the aligned stages on a fixed probe batch, in cka.json.

Usage:
    stages = aligned_stages(criterion)                          # {"stage1": ["gla"], "stage3": ["hfa"]}
    taps = stage_taps(criterion)                                # {"stage1": {"student": Tap, "teacher": Tap}, ...}
    values = probe_cka(student, features_of_teacher, images, stages, taps=taps)   # {"stage1": 0.41, ...}
    record_cka(RunDir(run_dir).cka, "start", values, images=8, stages=stages, step=0)
    read_cka(RunDir(run_dir).cka)                                # None when the run wrote none

Whether an alignment term helps shows in whether the student's features at the stage it aligns come to resemble the
teacher's. The probe is the first ``train.cka_images`` images of the validation split, so every run of a config
(and every seed) measures the same images at step 0 and after the last step. A feature term names the stage index
it reads as ``stage`` (gla, hfa, fitnet); the stage is called by its 1-based number, as the method spec does.
The maps compared are the ones the stage's first term reads (its ``taps``: the authors' attention entries on a
SegFormer side under ``variant: authors``, otherwise the stage outputs).
The probe runs no collective: under DDP only rank 0 runs it (the other ranks wait at their next collective).
"""
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn

from hmkd.atomic import atomic_write_text
from hmkd.engine.cka import FeatureCKA, finite_or_none
from hmkd.models.output import SegOutput, Tap

WHEN = ("start", "end")


def stage_key(index: int) -> str:
    return "stage%d" % (index + 1)


def aligned_stages(criterion: nn.Module) -> Dict[str, List[str]]:
    """{stage key: [terms]} of the criterion's terms that read a teacher feature stage (``stage`` attribute)."""
    stages: Dict[str, List[str]] = {}
    for name, term in getattr(criterion, "terms", {}).items():
        index = getattr(term, "stage", None)
        if getattr(term, "needs_teacher", False) and isinstance(index, int):
            stages.setdefault(stage_key(index), []).append(name)
    return dict(sorted(stages.items(), key=lambda item: int(item[0][len("stage"):])))


def stage_taps(criterion: nn.Module) -> Dict[str, Dict[str, Tap]]:
    """{stage key: {"student": Tap, "teacher": Tap}}: what the first term aligned at each stage reads."""
    taps: Dict[str, Dict[str, Tap]] = {}
    for term in getattr(criterion, "terms", {}).values():
        index = getattr(term, "stage", None)
        if getattr(term, "needs_teacher", False) and isinstance(index, int):
            default = {side: Tap(index) for side in ("student", "teacher")}
            taps.setdefault(stage_key(index), dict(getattr(term, "taps", default)))
    return taps


def probe_cka(student: nn.Module, teacher_features: Callable[[Tensor], SegOutput], images: Iterable[Tensor],
              stages: Dict[str, List[str]], student_context: Callable = torch.no_grad,
              taps: Optional[Dict[str, Dict[str, Tap]]] = None) -> Dict[str, Optional[float]]:
    """CKA per stage over ``images`` (each (B, 3, H, W), already on the device), the student in eval mode (its
    mode restored after). ``teacher_features(images)`` runs the frozen teacher as training does (its input
    normalisation, precision and the teacher taps of ``taps``); ``student_context()`` wraps the student's forward
    (e.g. its autocast); ``taps``: the maps each stage compares (default: the stage outputs)."""
    taps = {key: (taps or {}).get(key) or {side: Tap(int(key[len("stage"):]) - 1) for side in ("student", "teacher")}
            for key in stages}
    student_taps = [pair["student"] for pair in taps.values()]
    meters = {key: FeatureCKA() for key in stages}
    was_training = student.training
    student.eval()
    try:
        with torch.no_grad():
            for image_bchw in images:
                with student_context():
                    student_out = student(image_bchw, taps=student_taps)
                teacher_out = teacher_features(image_bchw)
                for key, pair in taps.items():
                    meters[key].update(student_out.feature(pair["student"]), teacher_out.feature(pair["teacher"]))
    finally:
        student.train(was_training)
    return {key: finite_or_none(meter.value()) for key, meter in meters.items()}


def read_cka(path: str) -> Optional[Dict[str, Any]]:
    """The run's cka.json, or None when there is none; a damaged one is a ValueError naming it."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            data = json.load(handle)
    except ValueError as exc:
        raise ValueError("%s is not valid JSON (%s); delete it to let the next run write it again" % (path, exc))
    if not isinstance(data, dict):
        raise ValueError("%s holds no CKA record (a JSON object); delete it to let the next run write it again" % path)
    return data


def record_cka(path: str, when: str, values: Dict[str, Optional[float]], images: int, stages: Dict[str, List[str]],
               step: int) -> Dict[str, Any]:
    """Write ``values`` as the record's ``when`` ("start" or "end") at ``step``, keeping the other one when it
    was measured on the same images and stages (a resumed run keeps its step-0 values); returns the record."""
    assert when in WHEN, when
    old = read_cka(path) or {}
    same = old.get("images") == images and old.get("stages") == stages
    record: Dict[str, Any] = {key: old[key] for key in WHEN if same and key in old}
    record.update({when: values, "images": images, "stages": stages,
                   "terms": sorted(name for names in stages.values() for name in names),
                   "steps": dict(old.get("steps", {}) if same else {}, **{when: step})})
    record["steps"] = {key: record["steps"][key] for key in WHEN if key in record}
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return record
