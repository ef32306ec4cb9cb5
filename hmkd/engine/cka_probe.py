"""The trainer's CKA probe: teacher-student linear CKA at the aligned stages on a fixed probe batch, in cka.json.

Usage:
    stages = aligned_stages(criterion)                          # {"stage1": ["gla"], "stage3": ["hfa"]}
    values = probe_cka(student, features_of_teacher, images, stages)   # {"stage1": 0.41, "stage3": 0.63}
    record_cka(RunDir(run_dir).cka, "start", values, images=8, stages=stages, step=0)
    read_cka(RunDir(run_dir).cka)                                # None when the run wrote none

Whether an alignment term helps shows in whether the student's features at the stage it aligns come to resemble the
teacher's. The probe is the first ``train.cka_images`` images of the validation split, so every run of a config
(and every seed) measures the same images at step 0 and after the last step. A feature term names the stage index
it reads as ``stage`` (gla, hfa, fitnet); the stage is called by its 1-based number, as the method spec does.
The probe runs no collective: under DDP only rank 0 runs it (the other ranks wait at their next collective).
"""
import json
import os
from typing import Any, Callable, Dict, Iterable, List, Optional

import torch
from torch import Tensor, nn

from hmkd.atomic import atomic_write_text
from hmkd.engine.cka import FeatureCKA, finite_or_none
from hmkd.models.output import SegOutput

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


def probe_cka(student: nn.Module, teacher_features: Callable[[Tensor], SegOutput], images: Iterable[Tensor],
              stages: Dict[str, List[str]], student_context: Callable = torch.no_grad) -> Dict[str, Optional[float]]:
    """CKA per stage over ``images`` (each (B, 3, H, W), already on the device), the student in eval mode (its
    mode restored after). ``teacher_features(images)`` runs the frozen teacher as training does (its input
    normalisation and precision); ``student_context()`` wraps the student's forward (e.g. its autocast)."""
    indices = {key: int(key[len("stage"):]) - 1 for key in stages}
    meters = {key: FeatureCKA() for key in stages}
    was_training = student.training
    student.eval()
    try:
        with torch.no_grad():
            for image_bchw in images:
                with student_context():
                    student_out = student(image_bchw)
                teacher_out = teacher_features(image_bchw)
                for key, index in indices.items():
                    meters[key].update(student_out.features[index], teacher_out.features[index])
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
