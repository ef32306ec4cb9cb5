"""Configs: base inheritance, dotted overrides, and errors that name the key (with the closest valid one)."""
import warnings

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
    assert cfg.optim.weight_decay == 0.0 and cfg.train.amp == "fp16" and cfg.data.crop_size == [32, 48]
    assert cfg.data.num_classes == 4 and cfg.model.name == "deeplabv3_tiny"


def test_scientific_notation_without_dot_is_a_number(config_dir):
    assert load_config(str(config_dir / "exp.yaml"), ["optim.lr=6e-5"]).optim.lr == pytest.approx(6e-5)


@pytest.mark.parametrize("override,expected", [
    ("optim.lrr=0.1", "unknown config key 'optim.lrr'; did you mean 'optim.lr'?"),
    ("trian.seed=1", "unknown config key 'trian'; did you mean 'train'?"),
    ("train.batch_size=two", "'train.batch_size' must be an integer, got 'two'"),
    ("train.amp=1", "train.amp must be false, fp16 or bf16 (true means fp16), got 1"),
    ("train.amp=fp32", "train.amp must be false, fp16 or bf16 (true means fp16), got 'fp32'"),
    ("train.compile=fast", "'train.compile' must be true or false, got 'fast'"),
    ("optim.name=adam", "optim.name must be one of 'sgd', 'adamw', got 'adam'"),
    ("eval.mode=slide", "eval.mode=slide also needs crop_size and stride"),
    ("data.nme=x", "unknown config key 'data.nme'; did you mean 'data.name'?"),
    ("data.crop_size=[0,8]", "data.crop_size must be [h, w] with positive entries, got [0, 8]"),
    ("data.num_classes=four", "config key 'data.num_classes' must be an integer, got 'four'"),
    ("model.name=deeplabv3_tin", "model.name: unknown model 'deeplabv3_tin' (did you mean 'deeplabv3_tiny'?)"),
    ("model.options.aspp_widht=3", "unknown config key 'model.options.aspp_widht'; did you mean "
                                   "'model.options.aspp_width'? valid keys here: aspp_width, aux_head"),
    ("model.options.output_stride=4", "model.options.output_stride must be one of 8, 16, 32, got 4"),
    ("teacher={name: segformer_tiny, checkpoint: t.pth, options: {drop_pth_rate: 0}}",
     "unknown config key 'teacher.options.drop_pth_rate'; did you mean 'teacher.options.drop_path_rate'?"),
    ("loss.terms.hfa.chunk_size=0", "loss.terms.hfa.chunk_size must be >= 1, got 0"),
    ("loss.terms.hfa.chunks=8",
     "unknown config key 'loss.terms.hfa.chunks'; did you mean 'loss.terms.hfa.chunk_size'?"),
    ("loss.terms.ce.wieght=1", "unknown config key 'loss.terms.ce.wieght'; did you mean 'loss.terms.ce.weight'? "
                               "valid keys here: weight"),
    ("loss.terms.ce.weight=-1", "loss.terms.ce.weight must be >= 0.0, got -1.0"),
    ("loss.terms.hfaa={}", "unknown loss term loss.terms.hfaa (did you mean 'hfa'?)"),
    ("optim.param_groups=[{match: '(', lr_mult: 2}]", "optim.param_groups[0].match '(' is not a regular expression"),
])
def test_errors_name_the_key(config_dir, override, expected):
    with pytest.raises(ValueError) as err:
        load_config(str(config_dir / "exp.yaml"), [override])
    assert expected in str(err.value) and "exp.yaml" in str(err.value)
    message = str(err.value).split("exp.yaml: ", 1)[1]
    dotted = expected.split("'")[1] if expected.startswith(("unknown config", "config key")) else expected.split()[0]
    assert message.count(dotted.rstrip(":")) == 1, "the path is said once"


def test_options_keep_the_keys_given(config_dir):
    """Model options and loss terms stay the mappings given (checked and typed): builders take them as keyword
    options, and defaults stay with the model or the term."""
    cfg = load_config(str(config_dir / "exp.yaml"), ["model.options.aux_head=true",
                                                      "loss.terms={aux_ce: {weight: 1}, hfa: {stage: 1}}"])
    assert cfg.model.options == {"aux_head": True}
    assert cfg.loss.terms == {"aux_ce": {"weight": 1.0}, "hfa": {"stage": 1}}
    assert isinstance(cfg.loss.terms["aux_ce"]["weight"], float)


def test_obsolete_ignore_index_loads_at_255_and_fails_otherwise(config_dir):
    """Old saved run configs carry loss.ignore_index: 255; the void label is the dataset's now."""
    with pytest.warns(UserWarning, match="'loss.ignore_index' is obsolete"):
        cfg = load_config(str(config_dir / "exp.yaml"), ["loss.ignore_index=255"])
    assert "ignore_index" not in cfg.to_dict()["loss"]
    with pytest.raises(ValueError) as err:
        load_config(str(config_dir / "exp.yaml"), ["loss.ignore_index=254"])
    message = str(err.value)
    assert "'loss.ignore_index'" in message and "can only be 255" in message and "got 254" in message
    assert "\n" not in message


def test_old_param_group_pattern_is_rewritten_with_a_warning(config_dir):
    """Patterns match the student's own names now; ones written against the trainer's (student.) still load."""
    old = "optim.param_groups=[{match: '^student\\.decode_head\\.', lr_mult: 10}]"
    with pytest.warns(UserWarning, match=r"write '\^decode_head\\\\\.'"):
        cfg = load_config(str(config_dir / "exp.yaml"), [old])
    assert cfg.optim.param_groups[0].match == "^decode_head\\."
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        new = load_config(str(config_dir / "exp.yaml"), ["optim.param_groups=[{match: '^decode_head\\.'}]"])
    assert new.optim.param_groups[0].match == "^decode_head\\."


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
