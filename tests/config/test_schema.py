"""Each model's input normalisation: declared or ``auto`` (from its weights' family), checked against the weights, and
the shipped configs feeding every network what its weights were trained on."""
import glob
import os
import warnings

import pytest
import torch

from hmkd.config import config_from_dict, load_config
from hmkd.config.schema import resolve_normalization
from hmkd.models.weights import weights_family

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "..", "configs")


def shipped_configs():
    return sorted(p for p in glob.glob(os.path.join(CONFIGS, "**", "*.yaml"), recursive=True)
                  if os.path.basename(p) != "base.yaml" and os.sep + "base" + os.sep not in p)


def cirkd_resnet_file(path):
    """CIRKD's deep-stem ImageNet ResNet layout (ResNetV1b: conv1/bn1/conv2/bn2/conv3/bn3), under a neutral name."""
    torch.save({name: torch.zeros(1) for name in ("conv1.weight", "bn1.weight", "conv2.weight", "bn2.weight",
                                                  "conv3.weight", "bn3.weight", "layer1.0.conv1.weight")}, str(path))
    return str(path)


def hmkd_model_file(path, normalize):
    torch.save({"model": {"backbone.conv1.weight": torch.zeros(1)}, "model_name": "segformer_tiny", "num_classes": 3,
                "normalize": normalize, "step": 1, "hmkd_version": "0"}, str(path))
    return str(path)


def experiment(model=None, teacher=None, data_normalize=None):
    data = {"name": "synthetic", "num_classes": 3}
    if data_normalize:
        data["normalize"] = data_normalize
    raw = {"model": dict({"name": "deeplabv3_tiny"}, **(model or {})), "data": data}
    if teacher:
        raw["teacher"] = dict({"name": "segformer_tiny"}, **teacher)
    return config_from_dict(raw)


def test_shipped_configs_feed_each_model_what_its_weights_expect():
    """Student weights by their official file names; a teacher by the config that trains it (its model.pth)."""
    checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = {path: resolve_normalization(load_config(path)) for path in shipped_configs()}
    for path, cfg in resolved.items():
        family = weights_family(cfg.model.pretrained) if cfg.model.pretrained else None
        if family is not None:
            assert cfg.model.normalize == family.normalize, (path, family)
            checked += 1
        assert cfg.data.normalize == cfg.model.normalize, path  # the data pipeline normalises for the student
        if cfg.teacher is not None:
            trains_it = [other for p, other in resolved.items() if os.path.dirname(p) == os.path.dirname(path)
                         and other.teacher is None and other.model.name == cfg.teacher.name]
            assert trains_it, path
            assert cfg.teacher.normalize == trains_it[0].model.normalize, path
    assert checked >= 10


def test_shipped_headline_pair_renormalizes_the_teacher():
    cfg = resolve_normalization(load_config(os.path.join(CONFIGS, "cityscapes",
                                                         "hmkd_segformer_b4_to_deeplabv3_r18.yaml")))
    assert (cfg.data.normalize, cfg.model.normalize, cfg.teacher.normalize) == ("bgr_mean", "bgr_mean", "imagenet_rgb")


def test_auto_takes_the_weight_family_and_the_data_follows_the_student(tmp_path):
    cfg = resolve_normalization(experiment(
        model={"pretrained": cirkd_resnet_file(tmp_path / "r18.pth"), "options": {"deep_stem": True}},
        teacher={"checkpoint": hmkd_model_file(tmp_path / "model.pth", "imagenet_rgb")}))
    assert cfg.model.normalize == "bgr_mean" and cfg.data.normalize == "bgr_mean"
    assert cfg.teacher.normalize == "imagenet_rgb"


def test_auto_without_a_telling_file_is_the_data_normalisation(tmp_path):
    cfg = resolve_normalization(experiment(model={"pretrained": str(tmp_path / "absent.pth")},
                                           teacher={"checkpoint": str(tmp_path / "absent.pth")},
                                           data_normalize="bgr_mean"))
    assert (cfg.model.normalize, cfg.teacher.normalize, cfg.data.normalize) == ("bgr_mean",) * 3


def test_evaluation_takes_the_checkpoint_over_the_pretrained_file(tmp_path):
    cfg = experiment(model={"pretrained": cirkd_resnet_file(tmp_path / "r18.pth")})
    resolved = resolve_normalization(cfg, checkpoint=hmkd_model_file(tmp_path / "model.pth", "imagenet_rgb"))
    assert resolved.model.normalize == resolved.data.normalize == "imagenet_rgb"


def test_contradicting_a_known_weight_file_warns_naming_both(tmp_path):
    weights = cirkd_resnet_file(tmp_path / "r18.pth")
    with pytest.warns(UserWarning) as caught:
        cfg = resolve_normalization(experiment(model={"pretrained": weights, "normalize": "imagenet_rgb"}))
    message = str(caught[0].message)
    for part in ("model.normalize=imagenet_rgb", weights, "CIRKD", "bgr_mean"):
        assert part in message
    assert cfg.model.normalize == "imagenet_rgb"  # declared values are kept: the warning says what to change
    with pytest.warns(UserWarning, match="teacher.normalize=bgr_mean"):
        resolve_normalization(experiment(teacher={"checkpoint": hmkd_model_file(tmp_path / "t.pth", "imagenet_rgb"),
                                                  "normalize": "bgr_mean"}))


def test_agreeing_declarations_are_quiet(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve_normalization(experiment(model={"pretrained": cirkd_resnet_file(tmp_path / "r18.pth"),
                                                "normalize": "bgr_mean"}))


@pytest.mark.parametrize("section", ["model", "teacher"])
def test_unknown_normalisation_names_the_key(section):
    raw = {"model": {"name": "deeplabv3_tiny"}, "data": {"name": "synthetic"},
           "teacher": {"name": "segformer_tiny", "checkpoint": "t.pth"}}
    raw[section]["normalize"] = "imagenet_bgr"
    with pytest.raises(ValueError, match=r"%s\.normalize must be one of 'auto', 'bgr_mean', 'imagenet_rgb', got "
                                         r"'imagenet_bgr'" % section):
        config_from_dict(raw)
