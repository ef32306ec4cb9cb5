"""Config errors name their full path; terms need a teacher; building reads feature_info and runs no model."""
import re

import pytest
import torch

from hmkd.losses import list_terms
from hmkd.losses.criterion import TermContext, build_criterion

DISTILL_TERMS = ["gla", "hfa", "kd", "cwd", "fitnet"]


@pytest.mark.parametrize("name,key,value", [
    ("gla", "patch", 8), ("hfa", "chunks", 8), ("kd", "T", 2.0), ("cwd", "tau", 4.0), ("fitnet", "conv", True),
    ("gla", "stage", 4), ("gla", "stage", -1), ("gla", "stage", True), ("gla", "stage", 1.0),
    ("gla", "dim", 0), ("gla", "patch_size", 0), ("gla", "reduction", "max"),
    ("hfa", "stage", 4), ("hfa", "context_on", "cnn"), ("hfa", "chunk_size", 0), ("hfa", "align_corners", "false"),
    ("kd", "temperature", 0), ("kd", "temperature", "4"), ("kd", "ignore_void", 1),
    ("cwd", "temperature", -1.0), ("fitnet", "stage", 7), ("fitnet", "bn", "yes"),
])
def test_bad_key_or_value_names_its_config_path(tiny_models, make_criterion, name, key, value):
    with pytest.raises(ValueError, match=re.escape("loss.terms.%s.%s" % (name, key))):
        make_criterion({"ce": {}, name: {"weight": 1.0, key: value}}, tiny_models["deeplab"], tiny_models["segformer"])


@pytest.mark.parametrize("terms,expected", [
    ({"hfa": {"chunk_size": 0}}, "loss.terms.hfa.chunk_size must be >= 1, got 0"),
    ({"hfa": {"chunks": 8}}, "unknown config key 'loss.terms.hfa.chunks'; did you mean 'loss.terms.hfa.chunk_size'? "
                             "valid keys here: align_corners, branch_bias, chunk_size, context, context_on, "
                             "offset_bias, resize_align_corners, stage, sync_bn, tap, teacher_context_at, variant, "
                             "weight"),
    ({"ce": {"wieght": 1.0}}, "unknown config key 'loss.terms.ce.wieght'; did you mean 'loss.terms.ce.weight'? "
                              "valid keys here: weight"),
    ({"kd": {"weight": -1}}, "loss.terms.kd.weight must be >= 0.0, got -1.0"),
    ({"kd": {"weight": "1"}}, "config key 'loss.terms.kd.weight' must be a number, got '1'"),
    ({"gla": {"stage": 4}}, "loss.terms.gla.stage must be a stage index below 4"),
    ({"hfaa": {}}, "unknown loss term loss.terms.hfaa (did you mean 'hfa'?)"),
    ({}, "loss.terms is empty"),
])
def test_messages_carry_the_full_path_once(tiny_models, make_criterion, terms, expected):
    with pytest.raises(ValueError) as err:
        make_criterion(terms, tiny_models["deeplab"], tiny_models["segformer"])
    assert str(err.value).startswith(expected)
    assert str(err.value).count("loss.terms") == 1 or expected.startswith("unknown config key")


def test_weight_and_options_reach_the_term(tiny_models, make_criterion):
    criterion = make_criterion({"ce": {}, "hfa": {"weight": 2, "chunk_size": 7, "context_on": "none"}},
                               tiny_models["deeplab"], tiny_models["segformer"])
    assert criterion.weights == {"ce": 1.0, "hfa": 2.0}
    assert criterion.terms["hfa"].chunk_size == 7 and criterion.terms["hfa"].context_sides == ()


@pytest.mark.parametrize("name", DISTILL_TERMS)
def test_distillation_term_without_teacher_is_refused(tiny_models, name):
    with pytest.raises(ValueError, match=r"loss\.terms\.%s needs a teacher" % name):
        build_criterion({name: {}}, TermContext(tiny_models["deeplab"], None, 255))


def test_all_terms_registered_and_weighted(tiny_models, make_criterion):
    criterion = make_criterion({name: {"weight": 0.5} for name in DISTILL_TERMS}, tiny_models["deeplab"],
                               tiny_models["segformer"])
    assert set(DISTILL_TERMS) <= set(list_terms())
    assert criterion.needs_teacher and criterion.weights == {name: 0.5 for name in DISTILL_TERMS}


def test_build_uses_feature_info_without_running_the_models(fresh_model, make_criterion):
    student, teacher = fresh_model("deeplab"), fresh_model("segformer")

    def refuse(*args, **kwargs):
        raise AssertionError("a term ran a model to discover shapes")

    for model in (student, teacher):
        model.forward = refuse
    terms = make_criterion({name: {} for name in DISTILL_TERMS}, student, teacher).terms
    assert terms["hfa"].teacher_proj.in_channels == teacher.feature_info[2].channels
    assert terms["gla"].teacher_relation.proj.in_channels == teacher.feature_info[0].channels
    assert terms["fitnet"].proj[0].in_channels == student.feature_info[2].channels


def test_model_without_feature_info_is_a_config_error(tiny_models, make_criterion):
    with pytest.raises(ValueError, match=r"loss\.terms\.gla.*feature_info"):
        make_criterion({"gla": {}}, tiny_models["deeplab"], torch.nn.Conv2d(3, 5, 1))
