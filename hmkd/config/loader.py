"""YAML configs with inheritance and dotted overrides, resolved to plain dicts.

Usage: raw = load_yaml_config("configs/cityscapes/deeplabv3_r18.yaml", ["optim.lr=0.02", "train.amp=true"])

A file may name ``base:`` (a path or a list of paths, relative to the file); bases are merged first, in order,
then the file, then the overrides (dicts merge key by key, everything else replaces). Override values are
parsed as YAML, so ``train.amp=true`` is a bool and ``data.crop_size=[512,512]`` a list.
"""
import copy
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml


def deep_merge(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    """``update`` over ``base``; nested dicts merge, other values replace. Neither input is modified."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str) -> Dict[str, Any]:
    if not os.path.isfile(path):
        raise FileNotFoundError("config file %s does not exist" % path)
    try:
        with open(path) as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = " at line %d" % (mark.line + 1) if mark is not None else ""
        raise ValueError("config file %s is not valid YAML%s: %s" % (path, where, getattr(exc, "problem", exc)))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError("config file %s must hold a mapping at the top level, not %s" % (path, type(data).__name__))
    return data


def load_file_with_bases(path: str, _chain: Optional[List[str]] = None) -> Dict[str, Any]:
    path = os.path.abspath(path)
    chain = (_chain or []) + [path]
    if path in (_chain or []):
        raise ValueError("config inheritance loops: %s" % " -> ".join(chain))
    data = read_yaml(path)
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    merged: Dict[str, Any] = {}
    for base in bases:
        base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise FileNotFoundError("config file %s names base %r, which does not exist (looked at %s)"
                                    % (path, base, base_path))
        merged = deep_merge(merged, load_file_with_bases(base_path, chain))
    return deep_merge(merged, data)


def parse_override(text: str) -> Dict[str, Any]:
    """``a.b.c=value`` -> {"a": {"b": {"c": parsed value}}}."""
    if "=" not in text:
        raise ValueError("override %r must look like key.sub=value" % text)
    dotted, raw = text.split("=", 1)
    keys = dotted.strip().split(".")
    if not all(keys):
        raise ValueError("override %r has an empty key" % text)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ValueError("override %r: the value is not valid YAML" % text)
    return nested(dotted.strip(), value)


def nested(dotted: str, value: Any) -> Dict[str, Any]:
    """``("a.b.c", v)`` -> {"a": {"b": {"c": v}}}: a dotted key as the mapping it addresses."""
    for key in reversed(dotted.split(".")):
        value = {key: value}
    return value


def load_yaml_config(path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    data = load_file_with_bases(path)
    for override in overrides:
        data = deep_merge(data, parse_override(override))
    return data
