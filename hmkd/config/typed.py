"""Turn plain dicts into nested config dataclasses, checking every key and type against the annotations.

Usage: cfg = from_dict(ExperimentConfig, raw_dict)        # ValueError names the dotted key and the fix

Unknown keys fail with the closest valid key; values are checked against the field's annotation (int, float,
bool, str, Optional, List, Tuple, Dict, nested dataclasses). Value rules live in each class's ``__post_init__``.
"""
import dataclasses
import difflib
import typing
from typing import Any, Type, TypeVar

T = TypeVar("T")
_MISSING = dataclasses.MISSING


def from_dict(cls: Type[T], data: Any, where: str = "") -> T:
    if not isinstance(data, dict):
        raise ValueError("config %s must be a mapping of keys, got %r" % (where or "(top level)", data))
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = "did you mean %r? " % _join(where, close[0]) if close else ""
            raise ValueError("unknown config key %r; %svalid keys here: %s"
                             % (_join(where, key), hint, ", ".join(sorted(fields))))
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, field in fields.items():
        if name in data:
            kwargs[name] = coerce(hints[name], data[name], _join(where, name))
        elif field.default is _MISSING and field.default_factory is _MISSING:  # type: ignore[misc]
            raise ValueError("config key %r is required" % _join(where, name))
    return cls(**kwargs)  # __post_init__ checks raise ValueError naming their dotted keys


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
        if hasattr(annotation, "from_dict"):  # a section that checks itself (e.g. hmkd.data.DataConfig)
            if not isinstance(value, dict):
                raise ValueError("config %s must be a mapping of keys, got %r" % (where, value))
            return annotation.from_dict(value)
        return from_dict(annotation, value, where)
    if origin in (list, typing.List, tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError("config key %r must be a list, got %r" % (where, value))
        if origin in (tuple, typing.Tuple) and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ValueError("config key %r must have %d items, got %r" % (where, len(args), value))
            return tuple(coerce(a, v, "%s[%d]" % (where, i)) for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return [coerce(item, v, "%s[%d]" % (where, i)) for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ValueError("config key %r must be a mapping, got %r" % (where, value))
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError("config key %r must be true or false, got %r" % (where, value))
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("config key %r must be an integer, got %r" % (where, value))
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("config key %r must be a number, got %r" % (where, value))
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError("config key %r must be a string, got %r" % (where, value))
        return value
    raise TypeError("unsupported annotation %r for %s" % (annotation, where))


def _join(where: str, key: Any) -> str:
    return "%s.%s" % (where, key) if where else str(key)


def check_choice(name: str, value: Any, choices: Any) -> None:
    if value not in choices:
        raise ValueError("%s must be one of %s, got %r" % (name, ", ".join(map(repr, choices)), value))


def check_positive(name: str, value: Any, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError("%s must be %s, got %r" % (name, ">= 0" if allow_zero else "> 0", value))
