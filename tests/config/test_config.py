"""Configs: base inheritance, dotted overrides, and errors that name the key (with the closest valid one)."""
import pytest

from hmkd.config import load_config, load_yaml_config, parse_override


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.fixture()
def config_dir(tmp_path):
    write(tmp_path / "base.yaml", "optim: {lr: 0.01, momentum: 0.9}\ndata: {name: synthetic, num_classes: 4}\n")
    write(tmp_path / "exp.yaml", "base: base.yaml\nmodel: {name: deeplabv3_tiny}\noptim: {lr: 0.02}\n")
    return tmp_path


def test_base_then_file_then_overrides(config_dir):
    cfg = load_config(str(config_dir / "exp.yaml"), ["optim.weight_decay=0", "train.amp=true",
                                                      "data.crop_size=[32,48]"])
    assert cfg.optim.lr == 0.02 and cfg.optim.momentum == 0.9  # file over base, base kept
    assert cfg.optim.weight_decay == 0.0 and cfg.train.amp is True and cfg.data.crop_size == [32, 48]
    assert cfg.data.num_classes == 4 and cfg.model.name == "deeplabv3_tiny"


def test_scientific_notation_without_dot_is_a_number(config_dir):
    assert load_config(str(config_dir / "exp.yaml"), ["optim.lr=6e-5"]).optim.lr == pytest.approx(6e-5)


@pytest.mark.parametrize("override,expected", [
    ("optim.lrr=0.1", "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    ("trian.seed=1", "unknown config key 'trian'; did you mean 'train'?"),
    ("train.batch_size=two", "'train.batch_size' must be an integer, got 'two'"),
    ("train.amp=1", "'train.amp' must be true or false"),
    ("optim.name=adam", "optim.name must be one of 'sgd', 'adamw', got 'adam'"),
    ("eval.mode=slide", "eval.mode=slide needs eval.crop_size and eval.stride"),
    ("data.nme=x", "unknown data config keys nme"),
])
def test_errors_name_the_key(config_dir, override, expected):
    with pytest.raises(ValueError) as err:
        load_config(str(config_dir / "exp.yaml"), [override])
    assert expected in str(err.value) and "exp.yaml" in str(err.value)


def test_required_section_and_files(tmp_path):
    with pytest.raises(ValueError, match="'model' is required"):
        load_config(write(tmp_path / "nomodel.yaml", "data: {name: synthetic}\n"))
    with pytest.raises(FileNotFoundError, match="names base 'missing.yaml'"):
        load_yaml_config(write(tmp_path / "a.yaml", "base: missing.yaml\n"))
    with pytest.raises(ValueError, match="loops"):
        write(tmp_path / "b.yaml", "base: c.yaml\n")
        load_yaml_config(write(tmp_path / "c.yaml", "base: b.yaml\n"))
    with pytest.raises(ValueError, match="bad.yaml is not valid YAML at line 2"):
        load_yaml_config(write(tmp_path / "bad.yaml", "a: 1\nb: x: 2\n"))


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == {"a": {"b": [1, 2]}}
    with pytest.raises(ValueError, match="must look like key.sub=value"):
        parse_override("a.b")


def test_shipped_configs_load():
    """Every complete config under configs/ (base.yaml files and configs/base/ are fragments) is valid and names
    registered models and loss terms."""
    import glob
    import os

    from hmkd.losses import list_terms
    from hmkd.models import list_models

    root = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
    paths = [p for p in glob.glob(os.path.join(root, "**", "*.yaml"), recursive=True)
             if os.path.basename(p) != "base.yaml" and os.sep + "base" + os.sep not in p]
    assert len(paths) >= 15
    for path in paths:
        cfg = load_config(path)
        assert cfg.model.name in list_models(), path
        assert cfg.teacher is None or cfg.teacher.name in list_models(), path
        assert set(cfg.loss.terms) <= set(list_terms()), path
