"""Shared fixtures: tiny models built once, the criterion built through the public path, outputs computed the way
the engine does (teacher in eval mode under no_grad, student in train mode). Helpers are fixtures because the
suite runs with --import-mode=importlib, where test modules cannot import this file."""
import pytest
import torch

from hmkd.losses.criterion import TermContext, build_criterion
from hmkd.models import build_model

NUM_CLASSES = 5
IGNORE = 255


def _freeze(model):
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _make_criterion(terms, student, teacher):
    return build_criterion(terms, TermContext(student, teacher, IGNORE))


def _run_pair(student, teacher, batch, size, seed=0, criterion=None):
    """With ``criterion``, each model also computes the attention taps its terms read, as the trainer asks."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size[0], size[1], generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (batch, size[0], size[1]), generator=gen)
    student_taps = criterion.taps("student") if criterion is not None else ()
    teacher_taps = criterion.taps("teacher") if criterion is not None else ()
    with torch.no_grad():
        teacher_out = teacher.eval()(images, taps=teacher_taps)
    # ASPP's image-pooling BatchNorm sees one value per channel with a single image: batch 1 runs in eval mode.
    student.train(batch > 1)
    return student(images, taps=student_taps), labels, teacher_out


@pytest.fixture(scope="session")
def num_classes():
    return NUM_CLASSES


@pytest.fixture(scope="session")
def tiny_models():
    """Frozen tiny models for tests that only read them (build terms, compute teacher outputs)."""
    torch.manual_seed(0)
    return {"segformer": _freeze(build_model("segformer_tiny", NUM_CLASSES)),
            "deeplab": _freeze(build_model("deeplabv3_tiny", NUM_CLASSES))}


@pytest.fixture(scope="session")
def fresh_model():
    """``fresh_model(name)``: a trainable tiny model ("segformer" or "deeplab"), seeded."""
    names = {"segformer": "segformer_tiny", "deeplab": "deeplabv3_tiny"}

    def make(name, seed=0):
        torch.manual_seed(seed)
        return build_model(names[name], NUM_CLASSES)
    return make


@pytest.fixture(scope="session")
def freeze():
    return _freeze


@pytest.fixture(scope="session")
def make_criterion():
    """``make_criterion(terms_cfg, student, teacher)`` through build_criterion, ignore index 255."""
    return _make_criterion


@pytest.fixture(scope="session")
def run_pair():
    """``run_pair(student, teacher, batch, (H, W), criterion=None)`` -> (student_out, labels, teacher_out) on random
    images; pass the criterion when its terms read attention taps."""
    return _run_pair
