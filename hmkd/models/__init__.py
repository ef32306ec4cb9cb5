"""Segmentation models behind one interface: ``build_model(name, num_classes, **options)``.

Usage:
    from hmkd.models import build_model, list_models
    model = build_model("deeplabv3_r18", num_classes=19, pretrained="resnet18-5c106cde.pth")
    out = model(images_bchw)      # SegOutput(logits, features, aux_logits)
    model.feature_info            # [FeatureInfo(channels, reduction)] for the four stage maps
    model.family                  # "cnn" or "transformer", from the registry
"""
from typing import Optional

from torch import nn

from hmkd.config.typed import from_dict
from hmkd.models import deeplabv3, segformer  # noqa: F401  (registers the model families)
from hmkd.models.output import FeatureInfo, SegOutput
from hmkd.models.registry import list_models, model_entry, model_family, register_model
from hmkd.models.weights import LoadReport, WeightsError, load_pretrained

__all__ = ["build_model", "list_models", "model_entry", "model_family", "register_model", "FeatureInfo",
           "SegOutput", "LoadReport", "WeightsError", "load_pretrained"]


def build_model(name: str, num_classes: int, pretrained: Optional[str] = None,
                pretrained_sha256: Optional[str] = None, **options) -> nn.Module:
    """Build a registered segmentor; ``pretrained`` is a local file (encoder or whole model) to load.

    The model carries its registry entry's ``family`` and ``checkpoint_filter_fn``, which HFA and
    :func:`load_pretrained` read.
    """
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError("num_classes must be a positive integer, got %r" % (num_classes,))
    entry = model_entry(name)
    try:
        checked = from_dict(entry.options, options, "options")
    except ValueError as exc:
        raise ValueError("model %r: %s" % (name, exc))
    model = entry.fn(num_classes, **vars(checked))
    model.family = entry.family
    model.checkpoint_filter_fn = entry.checkpoint_filter_fn
    if pretrained:
        load_pretrained(model, pretrained, sha256=pretrained_sha256)
    return model
