"""The pins one image stack installs, resolved from the requirements files the venvs use, split for the install steps.

Usage: python docker/image_pins.py --pins requirements/stack.txt [--override requirements/modern.txt]
                                   [--without mmcv-full,addict,yapf] [--torch-variant +cu128] --out DIR

docker/Dockerfile runs it before pip (standard library only: it runs in the image's bare venv). A stack is a base
pins file, an optional override file whose requirements replace the base's of the same name (the modern stack's
torch 2), and names to leave out (mmcv-full and its own dependencies, which have no torch-2 build). It writes, in
DIR: ``pins.txt`` (every resolved requirement: what docker/check_image.py checks the image against), ``torch.txt``
(torch/torchvision with the index's local version tag appended, e.g. ``torch==1.11.0+cu113``), ``mmcv.txt``
(mmcv-full, installed from its own find-links page without dependencies; empty when the stack has none) and
``rest.txt`` (everything else, from the package index).
"""
import argparse
import os
import re
import sys
from typing import Dict, List, Sequence, Tuple

TORCH_NAMES = ("torch", "torchvision")
MMCV_NAME = "mmcv-full"
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(.*)$")


def normalize(name: str) -> str:
    """PEP 503's name: PyYAML, pyyaml and py_yaml are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_requirements(path: str) -> List[Tuple[str, str]]:
    """(normalized name, requirement line) for each requirement of a pins file, in order; comments dropped.

    Only plain requirements are accepted (``name==1.0``, ``name>=1,<2``): an option line (``-r``, ``--index-url``)
    or an unparsable one is a ValueError naming the file and line, not something silently left out of the image.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError("pins file not found: %s" % path)
    found = []
    with open(path) as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            match = _REQUIREMENT.match(line)
            if line.startswith("-") or not match:
                raise ValueError("%s:%d: not a plain requirement: %r" % (path, number, line))
            found.append((normalize(match.group(1)), line))
    names = [name for name, _ in found]
    twice = sorted(set(name for name in names if names.count(name) > 1))
    if twice:
        raise ValueError("%s: %s listed more than once" % (path, ", ".join(twice)))
    return found


def resolve(base: Sequence[Tuple[str, str]], override: Sequence[Tuple[str, str]] = (),
            without: Sequence[str] = ()) -> List[str]:
    """The stack's requirement lines: ``base`` with each of ``override``'s names replaced in place (new names
    appended), minus ``without``. A ``without`` name that ``base`` does not list is a ValueError (a stale list)."""
    dropped = [normalize(name) for name in without]
    unknown = [name for name in dropped if name not in dict(base)]
    if unknown:
        raise ValueError("--without names what the base pins do not list: %s" % ", ".join(unknown))
    replaced = [name for name in dropped if name in dict(override)]
    if replaced:
        raise ValueError("%s both overridden and left out" % ", ".join(replaced))
    by_name: Dict[str, str] = dict(override)
    lines = [by_name.pop(name, line) for name, line in base if name not in dropped]
    return lines + [line for name, line in override if name in by_name]


def split(lines: Sequence[str], torch_variant: str = "") -> Dict[str, List[str]]:
    """The install steps' files: torch.txt (exact pins, ``torch_variant`` appended), mmcv.txt, rest.txt."""
    out: Dict[str, List[str]] = {"pins.txt": list(lines), "torch.txt": [], "mmcv.txt": [], "rest.txt": []}
    if torch_variant and not re.match(r"^\+[A-Za-z0-9.]+$", torch_variant):
        raise ValueError("torch variant must be a local version tag such as +cu113, got %r" % torch_variant)
    torch_names = []
    for line in lines:
        name = normalize(_REQUIREMENT.match(line).group(1))
        if name in TORCH_NAMES:
            if not re.match(r"^[A-Za-z0-9_.-]+\s*==\s*[^,;\s]+$", line):
                raise ValueError("%s must be pinned exactly (name==version) to take a variant, got %r" % (name, line))
            out["torch.txt"].append(line + torch_variant)
            torch_names.append(name)
        elif name == MMCV_NAME:
            out["mmcv.txt"].append(line)
        else:
            out["rest.txt"].append(line)
    missing = [name for name in TORCH_NAMES if name not in torch_names]
    if missing:
        raise ValueError("the stack pins no %s" % ", ".join(missing))
    return out


def exact_pins(path: str) -> Dict[str, str]:
    """{normalized name: version} of a pins file's exact (==) requirements: what check_image compares."""
    pins = {}
    for name, line in read_requirements(path):
        match = re.match(r"^[^=<>!~;]+==\s*([^,;\s]+)$", line)
        if match:
            pins[name] = match.group(1)
    return pins


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pins", required=True, help="the base pins file (requirements/stack.txt)")
    parser.add_argument("--override", default="", help="pins that replace the base's of the same name")
    parser.add_argument("--without", default="", help="comma-separated names of the base to leave out")
    parser.add_argument("--torch-variant", default="", help="local version tag of the torch index, e.g. +cu113")
    parser.add_argument("--out", required=True, help="folder for pins.txt, torch.txt, mmcv.txt and rest.txt")
    args = parser.parse_args(argv)
    try:
        override = read_requirements(args.override) if args.override else []
        without = [name for name in args.without.split(",") if name.strip()]
        files = split(resolve(read_requirements(args.pins), override, without), args.torch_variant)
    except (ValueError, FileNotFoundError) as exc:
        print("image_pins: error: %s" % exc, file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(args.out, name), "w") as handle:
            handle.write("".join(line + "\n" for line in lines))
    print("image_pins: %s: %s" % (args.out, ", ".join(files["torch.txt"] + files["mmcv.txt"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
