"""Name -> constructor registry for segmentors, with what the rest of the package needs to know about each.

Usage:
    @register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
    def segformer_b0(num_classes, **options): ...
    model = build_model("segformer_b0", num_classes=19)   # model.family == "transformer"

Each entry names the model's family ("cnn" / "transformer": HFA's ``context_on: auto`` gives the global context to
the CNN side), the dataclass of its keyword options (checked by hmkd.config.typed, so ``model.options`` typos fail
with the closest valid key) and its ``checkpoint_filter_fn`` (which part of the model a weights file fills).
``build_model`` records family and filter on the model it builds.
"""
import difflib
import warnings
from typing import Callable, Dict, List, NamedTuple, Optional, Type

from torch import nn

FAMILIES = ("cnn", "transformer")


class ModelEntry(NamedTuple):
    fn: Callable
    family: str
    options: Type
    checkpoint_filter_fn: Optional[Callable]


_MODELS: Dict[str, ModelEntry] = {}


def register_model(family: str, options: Type, checkpoint_filter_fn: Optional[Callable] = None) -> Callable:
    """Register the decorated constructor under its own name; a second registration of a name warns and replaces."""
    if family not in FAMILIES:
        raise ValueError("model family must be one of %s, got %r" % (", ".join(FAMILIES), family))

    def wrap(fn: Callable) -> Callable:
        name = fn.__name__
        if name in _MODELS:
            warnings.warn("model %r registered twice; the later definition wins" % name)
        _MODELS[name] = ModelEntry(fn, family, options, checkpoint_filter_fn)
        return fn
    return wrap


def list_models() -> List[str]:
    return sorted(_MODELS)


def model_entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=1)
        hint = " (did you mean %r?)" % close[0] if close else ""
        raise ValueError("unknown model %r%s; valid names: %s" % (name, hint, ", ".join(list_models())))
    return _MODELS[name]


def model_family(model: nn.Module) -> Optional[str]:
    """The family ``build_model`` recorded on ``model`` (or one the model sets itself); None when unknown."""
    family = getattr(model, "family", None)
    return family if family in FAMILIES else None
