"""Batches with unlabelled images (data.unlabeled: all-void labels): CE reads the labelled images alone, while the
label-free distillation terms read every image; kd's ignore_void would drop the unlabelled ones."""
import math

import pytest
import torch

from hmkd.models import build_model
from hmkd.models.output import SegOutput

LABELLED, UNLABELLED, SIZE = 2, 2, (32, 48)
TERMS = {"ce": {}, "aux_ce": {}, "kd": {}, "cwd": {}, "fitnet": {}, "gla": {"dim": 16, "patch_size": 2}, "hfa": {}}


def head(out, count):
    """The first ``count`` images of a model output."""
    cut = lambda t: None if t is None else t[:count]  # noqa: E731
    return SegOutput(cut(out.logits), [f[:count] for f in out.features], cut(out.aux_logits))


@pytest.fixture(scope="module")
def mixed_batch(tiny_models, make_criterion, num_classes):
    """(criterion, student output, teacher output, labels) for 2 labelled then 2 unlabelled images."""
    torch.manual_seed(0)
    student = build_model("deeplabv3_tiny", num_classes, aux_head=True)
    criterion = make_criterion({**TERMS, "aux_ce": {"weight": 0.4}}, student, tiny_models["segformer"])
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(LABELLED + UNLABELLED, 3, SIZE[0], SIZE[1], generator=generator)
    labels = torch.full((LABELLED + UNLABELLED,) + SIZE, 255, dtype=torch.long)
    labels[:LABELLED] = torch.randint(0, num_classes, (LABELLED,) + SIZE, generator=generator)
    labels[0, :4] = 255  # labelled images have void pixels of their own
    with torch.no_grad():
        teacher_out = tiny_models["segformer"](images)
    student.train()
    return criterion, student(images), teacher_out, labels


def values(criterion, student_out, labels, teacher_out):
    with torch.no_grad():
        return {name: value.item() for name, value in criterion(student_out, labels, teacher_out).items()}


def test_ce_on_a_mixed_batch_is_ce_on_its_labelled_images(mixed_batch):
    criterion, student_out, teacher_out, labels = mixed_batch
    mixed = values(criterion, student_out, labels, teacher_out)
    alone = values(criterion, head(student_out, LABELLED), labels[:LABELLED], head(teacher_out, LABELLED))
    assert all(math.isfinite(v) for v in mixed.values()), mixed
    for name in ("ce", "aux_ce"):
        assert mixed[name] == pytest.approx(alone[name], rel=1e-6, abs=0), name
    for name in ("kd", "cwd", "fitnet", "gla", "hfa"):  # the unlabelled images count in every label-free term
        assert abs(mixed[name] - alone[name]) > 1e-4 * abs(alone[name]), name


def test_label_free_terms_do_not_read_the_labels(mixed_batch, num_classes):
    criterion, student_out, teacher_out, labels = mixed_batch
    other = torch.randint(0, num_classes, labels.shape, generator=torch.Generator().manual_seed(1))
    first, second = values(criterion, student_out, labels, teacher_out), values(criterion, student_out, other,
                                                                                 teacher_out)
    for name in ("kd", "cwd", "fitnet", "gla", "hfa"):
        assert first[name] == second[name], name
    assert first["ce"] != second["ce"]


def test_kd_ignore_void_sees_the_labelled_images_only(mixed_batch, tiny_models, make_criterion):
    """Why loss.terms.kd.ignore_void=true is refused with data.unlabeled (hmkd.config.schema)."""
    _, student_out, teacher_out, labels = mixed_batch
    masked = make_criterion({"kd": {"ignore_void": True}}, tiny_models["deeplab"], tiny_models["segformer"])
    mixed = values(masked, student_out, labels, teacher_out)["kd"]
    alone = values(masked, head(student_out, LABELLED), labels[:LABELLED], head(teacher_out, LABELLED))["kd"]
    assert mixed == pytest.approx(alone, rel=1e-6)
