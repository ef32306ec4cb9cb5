"""Parameter groups: patterns match the student's own names; the criterion's parameters stay in the default group,
in the order the optimizer has always had (student's named_parameters, then the criterion's)."""
import re

import pytest
import torch

from hmkd.config.schema import OptimConfig, ParamGroupConfig
from hmkd.engine.optim import build_optimizer, build_param_groups
from hmkd.engine.trainer import TrainableModule
from hmkd.losses.criterion import TermContext, build_criterion
from hmkd.models import build_model


@pytest.fixture(scope="module")
def trainable():
    torch.manual_seed(0)
    student, teacher = build_model("deeplabv3_tiny", 5), build_model("segformer_tiny", 5)
    return TrainableModule(student, build_criterion({"ce": {}, "hfa": {}}, TermContext(student, teacher, 255)))


def trainer_named_groups(module, full_name_pattern, no_decay):
    """The grouping as it was, on the trainer's names: the reference the new grouping must equal exactly."""
    head, default, norm_and_bias = [], [], []
    for name, param in module.named_parameters():
        if re.search(full_name_pattern, name):
            head.append(param)
        elif no_decay and param.ndim <= 1:
            norm_and_bias.append(param)
        else:
            default.append(param)
    return [default, head, norm_and_bias]


@pytest.mark.parametrize("no_decay", [False, True])
def test_relative_pattern_gives_the_same_groups_in_the_same_order(trainable, no_decay):
    cfg = OptimConfig(name="adamw", param_groups=[ParamGroupConfig("^decode_head\\.", lr_mult=10.0)],
                      no_decay_norm_and_bias=no_decay)
    groups = build_param_groups(trainable, cfg)
    expected = [g for g in trainer_named_groups(trainable, "^student\\.decode_head\\.", no_decay) if g]
    assert [[id(p) for p in g["params"]] for g in groups] == [[id(p) for p in g] for g in expected]
    criterion = {id(p) for p in trainable.criterion.parameters()}
    assert criterion and not criterion & {id(p) for p in groups[1]["params"]}  # never in a matched group
    assert [g["lr"] for g in build_optimizer(trainable, cfg).param_groups][:2] == [cfg.lr, cfg.lr * 10]


def test_old_pattern_warns_how_to_write_it_and_groups_the_same(trainable):
    with pytest.warns(UserWarning, match=r"student's own parameter names; write '\^decode_head\\\\\.'"):
        old = ParamGroupConfig("^student\\.decode_head\\.", lr_mult=10.0)
    new = ParamGroupConfig("^decode_head\\.", lr_mult=10.0)
    assert old == new
    groups = [build_param_groups(trainable, OptimConfig(param_groups=[g])) for g in (old, new)]
    assert [[id(p) for p in g["params"]] for g in groups[0]] == [[id(p) for p in g["params"]] for g in groups[1]]


def test_pattern_is_not_matched_against_the_criterion(trainable):
    with pytest.raises(ValueError, match=r"pattern '\^terms' matches no trainable parameter of the student"):
        build_param_groups(trainable, OptimConfig(param_groups=[ParamGroupConfig("^terms")]))
    bare = build_param_groups(trainable.student, OptimConfig(param_groups=[ParamGroupConfig("^decode_head\\.")]))
    assert [id(p) for p in bare[1]["params"]] == [id(p) for p in trainable.student.decode_head.parameters()]
