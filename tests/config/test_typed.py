"""hmkd.config.typed: one from_dict for every option; checks name their field, from_dict adds the dotted path once."""
from dataclasses import dataclass, field
from typing import Any, Dict, List

import pytest

from hmkd.config.typed import check_at_least, from_dict, given_options, parsed_by


@dataclass
class Res:
    nodes: int = 1
    mem_gb: float = 1.0

    def __post_init__(self):
        check_at_least("nodes", self.nodes, 1)


@dataclass
class Item:
    name: str = "x"
    res: Res = field(default_factory=Res)


def _options_of_kind(value: Any, section: Dict[str, Any], where: str) -> Dict[str, Any]:
    return given_options(Res if section.get("kind", "res") == "res" else Item, value, where)


@dataclass
class Top:
    items: List[Item] = field(default_factory=list)
    kind: str = "res"
    options: Dict[str, Any] = field(default_factory=dict, metadata=parsed_by(_options_of_kind))
    seen: List[str] = field(default_factory=list)
    retired_keys = {"old": (7, "it is always 7 now")}

    def check_given_keys(self, keys, where):
        self.seen = list(keys)


@pytest.mark.parametrize("data,expected", [
    ({"items": [{"name": "hmkd", "res": {"nodes": 0}}]}, "items.hmkd.res.nodes must be >= 1, got 0"),
    ({"items": [{"res": {"nodes": 0}}]}, "items[0].res.nodes must be >= 1, got 0"),
    ({"items": [{"name": "a", "res": {"nodse": 2}}]},
     "unknown config key 'items.a.res.nodse'; did you mean 'items.a.res.nodes'? valid keys here: mem_gb, nodes"),
    ({"options": {"nodes": 0}}, "options.nodes must be >= 1, got 0"),
    ({"kind": "item", "options": {"nodes": 0}}, "unknown config key 'options.nodes'"),
    ({"old": 8}, "config key 'old' is obsolete and can only be 7 (it is always 7 now), got 8"),
    ({"items": [{"res": {"mem_gb": "4"}}]}, "config key 'items[0].res.mem_gb' must be a number, got '4'"),
])
def test_errors_carry_the_full_path_once(data, expected):
    with pytest.raises(ValueError) as err:
        from_dict(Top, data, "")
    assert str(err.value).startswith(expected)


def test_where_prefixes_every_path():
    with pytest.raises(ValueError, match=r"^stages\.a\.resources\.nodes must be >= 1, got 0$"):
        from_dict(Res, {"nodes": 0}, "stages.a.resources")


def test_hooks_retired_keys_given_options_and_yaml_numbers():
    with pytest.warns(UserWarning, match="config key 'old' is obsolete and ignored"):
        top = from_dict(Top, {"old": 7, "options": {"nodes": 2}, "items": [{"res": {"mem_gb": "1e-4"}}]})
    assert top.options == {"nodes": 2}  # the keys given, not the defaults
    assert top.seen == ["items", "options"]  # retired keys are gone before the section sees its keys
    assert top.items[0].res.mem_gb == pytest.approx(1e-4)  # PyYAML 1.1 reads 1e-4 as a string
