"""Turn plain dicts into nested config dataclasses, checking every key and type against the annotations.

Usage: cfg = from_dict(ExperimentConfig, raw_dict)        # ValueError names the dotted key and the fix

This is the one way options are checked here: experiment sections, the data section, model options, loss-term
options and pipeline specs. Unknown keys fail with the closest valid key; values are checked against the field's
annotation (int, float, bool, str, Optional, Union, List, Tuple, Dict, nested dataclasses). Items of a list that
carry a ``name`` are addressed by it (``stages.hmkd.resources``, as ``--set stages.hmkd.resources.nodes=2`` does).

Value rules live in each class's ``__post_init__`` and name their field relative to the class, using the
validators below (``check_at_least("nodes", self.nodes, 1)`` -> "nodes must be >= 1, got 0"); ``from_dict``
prefixes the class's dotted path, so every message has the full path exactly once:
"stages.hmkd.resources.nodes must be >= 1, got 0". Such a message must therefore start with a field name.

Optional hooks a dataclass may declare:
    retired_keys = {"key": (only_accepted_value, why)}   # obsolete keys old saved configs still carry
    field(metadata=parsed_by(fn))                        # fn(value, section, where): a field whose schema depends
                                                         # on a sibling or on its own keys (model/term options)
    def check_given_keys(self, keys, where)              # sees which keys the mapping gave (warn about ignored ones)
"""
import dataclasses
import difflib
import re
import typing
import warnings
from typing import Any, Callable, Dict, Iterable, Type, TypeVar

T = TypeVar("T")
_MISSING = dataclasses.MISSING
_PARSER = "hmkd.parsed_by"
# Numbers PyYAML 1.1 leaves as strings: scientific notation without a dot or without a signed exponent (1e-4, 1.0e5).
_SCIENTIFIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def from_dict(cls: Type[T], data: Any, where: str = "") -> T:
    """``cls`` built from the mapping ``data`` found at dotted path ``where`` ("" for the top level)."""
    if not isinstance(data, dict):
        raise ValueError("config %s must be a mapping of keys, got %r" % (where or "(top level)", data))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    data = _drop_retired(cls, data, where)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = "did you mean %r? " % _join(where, close[0]) if close else ""
            raise ValueError("unknown config key %r; %svalid keys here: %s"
                             % (_join(where, key), hint, ", ".join(sorted(fields))))
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        path = _join(where, name)
        if name in data:
            parser = field.metadata.get(_PARSER)
            kwargs[name] = parser(data[name], data, path) if parser else coerce(hints[name], data[name], path)
        elif field.default is _MISSING and field.default_factory is _MISSING:  # type: ignore[misc]
            raise ValueError("config key %r is required" % path)
    try:
        obj = cls(**kwargs)
    except ValueError as exc:  # __post_init__ names the field relative to this section
        raise ValueError(_join(where, exc)) from None
    if hasattr(obj, "check_given_keys"):
        obj.check_given_keys(sorted(data), where)
    return obj


def given_options(cls: Type, data: Any, where: str) -> Dict[str, Any]:
    """``data`` checked as ``cls`` at ``where``, reduced to the keys it gave (checked values), so defaults stay with
    the code that owns them: what a config keeps for a model's or a loss term's options."""
    checked = from_dict(cls, {} if data is None else data, where)
    fields = {f.name for f in dataclasses.fields(cls)}
    return {key: getattr(checked, key) for key in data or {} if key in fields}  # retired keys are dropped


def parsed_by(parser: Callable[[Any, Dict[str, Any], str], Any]) -> Dict[str, Any]:
    """Field metadata: ``parser(value, section, where)`` returns the field's value instead of the annotation check,
    for a field whose schema depends on a sibling key (a model's options on its name) or on its own keys."""
    return {_PARSER: parser}


def to_dict(obj: Any) -> Any:
    """Dataclasses (nested) back to plain data, for saving the resolved config."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def coerce(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(option, value, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if origin in (list, typing.List, tuple, typing.Tuple):
        return _coerce_sequence(origin, args, value, where)
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ValueError("config key %r must be a mapping, got %r" % (where, value))
        return dict(value)
    return _coerce_scalar(annotation, value, where)


def _coerce_sequence(origin: Any, args: Any, value: Any, where: str) -> Any:
    if not isinstance(value, (list, tuple)):
        raise ValueError("config key %r must be a list, got %r" % (where, value))
    if origin in (tuple, typing.Tuple) and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ValueError("config key %r must have %d items, got %r" % (where, len(args), value))
        return tuple(coerce(a, v, "%s[%d]" % (where, i)) for i, (a, v) in enumerate(zip(args, value)))
    item = args[0] if args else Any
    return [coerce(item, v, _item_path(where, i, v)) for i, v in enumerate(value)]


def _coerce_scalar(annotation: Any, value: Any, where: str) -> Any:
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError("config key %r must be true or false, got %r" % (where, value))
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("config key %r must be an integer, got %r" % (where, value))
        return value
    if annotation is float:
        if isinstance(value, str) and _SCIENTIFIC.match(value.strip()):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("config key %r must be a number, got %r" % (where, value))
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError("config key %r must be a string, got %r" % (where, value))
        return value
    raise TypeError("unsupported annotation %r for %s" % (annotation, where))


def _drop_retired(cls: Type, data: Dict[str, Any], where: str) -> Dict[str, Any]:
    """Keys the class no longer has but old saved configs carry: accepted (with a warning) only at the one value
    they could usefully hold."""
    retired = getattr(cls, "retired_keys", {})
    for key in set(data) & set(retired):
        accepted, why = retired[key]
        if isinstance(data[key], bool) or data[key] != accepted:
            raise ValueError("config key %r is obsolete and can only be %r (%s), got %r"
                             % (_join(where, key), accepted, why, data[key]))
        warnings.warn("config key %r is obsolete and ignored (%s); remove it" % (_join(where, key), why))
    return {k: v for k, v in data.items() if k not in retired}


def _item_path(where: str, index: int, value: Any) -> str:
    """``stages.hmkd`` for an item named hmkd, ``optim.param_groups[0]`` for one without a name."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return _join(where, value["name"])
    return "%s[%d]" % (where, index)


def _join(where: str, key: Any) -> str:
    return "%s.%s" % (where, key) if where else str(key)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError("%s must be one of %s, got %r" % (name, ", ".join(map(repr, choices)), value))


def check_at_least(name: str, value: Any, minimum: Any) -> None:
    if value < minimum:
        raise ValueError("%s must be >= %r, got %r" % (name, minimum, value))


def check_positive(name: str, value: Any) -> None:
    if not value > 0:
        raise ValueError("%s must be > 0, got %r" % (name, value))
