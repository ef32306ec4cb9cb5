"""docker/image_pins.py: each stack's image installs the pins its venv has, split for the install steps.

Usage: pytest tests/docker/test_image_pins.py
"""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stack_args(stack):
    with open(os.path.join(ROOT, "docker", "stacks", stack + ".args")) as handle:
        return dict(re.findall(r"^([A-Z_]+)=(\S*)$", handle.read(), re.M))


def resolved(image_pins, stack, variant=None):
    args = stack_args(stack)
    override = image_pins.read_requirements(os.path.join(ROOT, args["PINS_OVERRIDE"])) if args["PINS_OVERRIDE"] else []
    lines = image_pins.resolve(image_pins.read_requirements(os.path.join(ROOT, args["PINS"])), override,
                               [n for n in args["WITHOUT"].split(",") if n])
    return image_pins.split(lines, args["TORCH_VARIANT"] if variant is None else variant)


def names(lines):
    return [re.split(r"[=<>!~;\s]", line, 1)[0].lower() for line in lines]


def test_legacy_is_stack_txt_with_the_cuda_tag_on_torch(image_pins):
    files = resolved(image_pins, "legacy")
    stack = image_pins.exact_pins(os.path.join(ROOT, "requirements", "stack.txt"))
    assert files["torch.txt"] == ["torch==%s+cu113" % stack["torch"], "torchvision==%s+cu113" % stack["torchvision"]]
    assert files["mmcv.txt"] == ["mmcv-full==%s" % stack["mmcv-full"]]
    assert len(files["pins.txt"]) == len(stack) and not set(names(files["rest.txt"])) & {"torch", "mmcv-full"}


def test_modern_is_what_make_setup_stack_modern_installs(image_pins):
    """`make setup STACK=modern` installs the pins image_pins resolves from modern.args' WITHOUT, as the image does."""
    files = resolved(image_pins, "modern")
    modern = image_pins.exact_pins(os.path.join(ROOT, "requirements", "modern.txt"))
    assert files["torch.txt"] == ["torch==%s+cu128" % modern["torch"], "torchvision==%s+cu128" % modern["torchvision"]]
    assert files["mmcv.txt"] == []
    with open(os.path.join(ROOT, "tools", "setup_env.sh")) as handle:
        setup = handle.read()
    assert "docker/image_pins.py --pins requirements/stack.txt --override requirements/modern.txt" in setup
    assert "s/^WITHOUT=(.*)$/\\1/p' docker/stacks/modern.args" in setup and '-r "$venv/pins/pins.txt"' in setup
    venv_drops = ["torch", "torchvision"] + stack_args("modern")["WITHOUT"].split(",")
    stack = names(line for _, line in image_pins.read_requirements(os.path.join(ROOT, "requirements", "stack.txt")))
    expected = [n for n in stack if n not in venv_drops] + names(
        line for _, line in image_pins.read_requirements(os.path.join(ROOT, "requirements", "modern.txt")))
    assert sorted(names(files["pins.txt"])) == sorted(set(expected))
    assert "setuptools>=77.0.3,<81" in files["rest.txt"]


def test_override_replaces_in_place_and_without_drops(image_pins):
    base = [("torch", "torch==1.11.0"), ("pyyaml", "PyYAML==6.0"), ("mmcv-full", "mmcv-full==1.7.1")]
    lines = image_pins.resolve(base, [("torch", "torch==2.14.1"), ("setuptools", "setuptools<81")], ["mmcv-full"])
    assert lines == ["torch==2.14.1", "PyYAML==6.0", "setuptools<81"]
    with pytest.raises(ValueError, match="yapf"):
        image_pins.resolve(base, [], ["yapf"])  # a stale --without list is an error, not a no-op
    with pytest.raises(ValueError, match="overridden and left out"):
        image_pins.resolve(base, [("torch", "torch==2.0")], ["torch"])


def test_bad_inputs_fail_with_the_offending_name(image_pins, tmp_path):
    pins = tmp_path / "pins.txt"
    pins.write_text("torch==1.11.0\n-r other.txt\n")
    with pytest.raises(ValueError, match=r"pins.txt:2: not a plain requirement"):
        image_pins.read_requirements(str(pins))
    pins.write_text("torch==1.11.0\nTorch==1.12.0\n")
    with pytest.raises(ValueError, match="torch listed more than once"):
        image_pins.read_requirements(str(pins))
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        image_pins.read_requirements(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="torchvision must be pinned exactly"):
        image_pins.split(["torch==2.1", "torchvision>=0.16"], "+cu121")
    with pytest.raises(ValueError, match="pins no torchvision"):
        image_pins.split(["torch==2.1"])
    with pytest.raises(ValueError, match="local version tag"):
        image_pins.split(["torch==2.1", "torchvision==0.16"], "cu121")


def test_cli_writes_the_install_files(tmp_path):
    """As the Dockerfile runs it (the modern stack's arguments), with this interpreter."""
    args = stack_args("modern")
    out = tmp_path / "pins"
    result = subprocess.run([sys.executable, os.path.join(ROOT, "docker", "image_pins.py"),
                             "--pins", os.path.join(ROOT, args["PINS"]),
                             "--override", os.path.join(ROOT, args["PINS_OVERRIDE"]), "--without", args["WITHOUT"],
                             "--torch-variant", args["TORCH_VARIANT"], "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert result.returncode == 0, result.stdout
    assert sorted(os.listdir(str(out))) == ["mmcv.txt", "pins.txt", "rest.txt", "torch.txt"]
    assert (out / "mmcv.txt").read_text() == "" and "+cu128" in (out / "torch.txt").read_text()
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "docker", "image_pins.py"), "--pins",
                          os.path.join(ROOT, "requirements", "stack.txt"), "--without", "mmcv-ful", "--out",
                          str(tmp_path / "bad")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    assert bad.returncode == 2 and bad.stdout.strip().splitlines() == [
        "image_pins: error: --without names what the base pins do not list: mmcv-ful"]
