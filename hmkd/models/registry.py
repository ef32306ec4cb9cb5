"""Name -> constructor registry for segmentors.

Usage:
    @register_model
    def segformer_b0(num_classes, **options): ...
    model = build_model("segformer_b0", num_classes=19)
"""
import difflib
import warnings
from typing import Callable, Dict, List

_MODELS: Dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    """Register ``fn`` under its own name; a second registration of a name warns and replaces."""
    name = fn.__name__
    if name in _MODELS:
        warnings.warn("model %r registered twice; the later definition wins" % name)
    _MODELS[name] = fn
    return fn


def list_models() -> List[str]:
    return sorted(_MODELS)


def get_model_fn(name: str) -> Callable:
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=1)
        hint = " (did you mean %r?)" % close[0] if close else ""
        raise ValueError("unknown model %r%s; valid names: %s" % (name, hint, ", ".join(list_models())))
    return _MODELS[name]
