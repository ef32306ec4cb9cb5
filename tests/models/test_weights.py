"""Weight files: corrupt, wrong-shape, missing-key and checksum errors name the file and the keys."""
import hashlib

import numpy as np
import pytest
import torch

from hmkd.models import WeightsError, build_model, load_pretrained


@pytest.fixture()
def r18_file(tmp_path):
    state = build_model("deeplabv3_tiny", num_classes=3).backbone.state_dict()
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    return path, state


def test_corrupt_bytes_name_the_file(tmp_path, r18_file):
    path, _ = r18_file
    data = path.read_bytes()
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated.pth.*cannot be read"):
        build_model("deeplabv3_tiny", 3, pretrained=str(bad))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        build_model("deeplabv3_tiny", 3, pretrained=str(tmp_path / "nothing.pth"))


def test_shape_mismatch_names_first_keys(tmp_path):
    whole = build_model("deeplabv3_tiny", num_classes=5).state_dict()
    path = tmp_path / "five_classes.pth"
    torch.save({"model": whole}, path)  # this project's checkpoint layout
    with pytest.raises(WeightsError) as err:
        build_model("deeplabv3_tiny", 3, pretrained=str(path))
    message = str(err.value)
    assert "five_classes.pth" in message and "decode_head.classifier.weight" in message and "(5," in message


def test_missing_keys_are_reported(r18_file, tmp_path, caplog):
    path, state = r18_file
    partial = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    partial_path = tmp_path / "partial.pth"
    torch.save(partial, partial_path)
    model = build_model("deeplabv3_tiny", 3)
    report = load_pretrained(model, str(partial_path))
    assert report.target == "backbone"
    assert report.missing and all(k.startswith("layer4.") for k in report.missing)
    assert "partial.pth" in caplog.text and "missing" in caplog.text
    with pytest.raises(WeightsError, match="partial.pth.*missing"):
        load_pretrained(model, str(partial_path), strict=True)


def test_file_of_another_family_is_refused(tmp_path):
    path = tmp_path / "mit_b0.pth"
    torch.save(build_model("segformer_tiny", 3).backbone.state_dict(), path)
    with pytest.raises(WeightsError, match="mit_b0.pth.*another model family"):
        build_model("deeplabv3_tiny", 3, pretrained=str(path))


def test_the_registered_filter_decides_the_target(r18_file):
    """load_pretrained asks the model for the filter build_model recorded; without one the file fills the model."""
    path, state = r18_file
    model = build_model("deeplabv3_tiny", 3)
    calls = []

    def spy(state_dict, target_model):
        calls.append(target_model)
        return model.backbone, state_dict

    model.checkpoint_filter_fn = spy
    assert load_pretrained(model, str(path)).target == "backbone" and calls == [model]
    del model.checkpoint_filter_fn
    with pytest.raises(WeightsError, match="no key of the model"):  # backbone keys lack the "backbone." prefix
        load_pretrained(model, str(path))


def test_sha256_is_checked(r18_file):
    path, state = r18_file
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    model = build_model("deeplabv3_tiny", 3, pretrained=str(path), pretrained_sha256=good)
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    with pytest.raises(WeightsError, match="backbone.pth.*sha256"):
        build_model("deeplabv3_tiny", 3, pretrained=str(path), pretrained_sha256="0" * 64)


def test_non_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(WeightsError, match="list.pth.*state dict"):
        build_model("deeplabv3_tiny", 3, pretrained=str(path))


# ----------------------------------------------------------------- weight families (input normalisation)
def save(path, obj, legacy=False):
    torch.save(obj, str(path), _use_new_zipfile_serialization=not legacy)
    return str(path)


CIRKD_STEM = ("conv1.weight", "bn1.weight", "conv2.weight", "bn2.weight", "conv3.weight", "bn3.weight",
              "layer1.0.conv1.weight")


@pytest.mark.parametrize("legacy", [False, True])
def test_torchvision_resnet_by_its_keys_in_both_file_formats(tmp_path, legacy):
    from torchvision.models import resnet18

    from hmkd.models.weights import weights_family

    family = weights_family(save(tmp_path / "tv.pth", resnet18().state_dict(), legacy))
    assert (family.name, family.normalize) == ("torchvision", "imagenet_rgb")


def zeros(keys):
    return {k: torch.zeros(1) for k in keys}


@pytest.mark.parametrize("name,make_state,expected", [
    ("mit.pth", lambda: build_model("segformer_tiny", 3).backbone.state_dict(), "nvlabs_mit"),  # NVlabs' names
    ("hf.pth", lambda: zeros(["segformer.encoder.patch_embeddings.0.proj.weight", "decode_head.classifier.weight"]),
     "huggingface_segformer"),
    ("cirkd_stem.pth", lambda: zeros(CIRKD_STEM), "cirkd"),
    ("cirkd_whole.pth", lambda: {"state_dict": zeros("module.pretrained." + k for k in CIRKD_STEM)}, "cirkd"),
    ("sequential_stem.pth", lambda: zeros(["conv1.0.weight", "conv1.6.weight", "bn1.weight"]), "cirkd"),
])
def test_families_by_their_keys(tmp_path, name, make_state, expected):
    from hmkd.models.weights import WEIGHT_FAMILIES, weights_family

    family = weights_family(save(tmp_path / name, make_state()))
    assert family.name == expected and family.normalize == WEIGHT_FAMILIES[expected][0]


def test_mmseg_checkpoints_by_their_keys(tmp_path):
    """OpenMMLab's own modules as the oracle of its key names (mmseg's MiT and deep-stem ResNetV1c)."""
    backbones = pytest.importorskip("mmseg.models.backbones")
    from hmkd.models.weights import weights_family

    for model in (backbones.MixVisionTransformer(embed_dims=8, num_layers=[1, 1, 1, 1], num_heads=[1, 1, 1, 1]),
                  backbones.ResNetV1c(depth=18)):
        state = {"backbone." + k: v for k, v in model.state_dict().items()}
        family = weights_family(save(tmp_path / "mmseg.pth", {"meta": {"mmcv_version": "1.7.1"}, "state_dict": state}))
        assert (family.name, family.normalize) == ("mmseg", "imagenet_rgb"), type(model).__name__


@pytest.mark.parametrize("name,expected", [
    ("resnet18-5c106cde.pth", "torchvision"), ("resnet101-63fe2227.pth", "torchvision"), ("mit_b4.pth", "nvlabs_mit"),
    ("resnet18-imagenet.pth", "cirkd"), ("resnet101-imagenet.pth", "cirkd"),
    ("deeplabv3_resnet101_citys_best_model.pth", "cirkd"), ("deeplabv3_resnet101_camvid_best_model.pth", "cirkd"),
    ("segformer_mit-b4_8x1_1024x1024_160k_cityscapes_20211207_080709-07f6c333.pth", "mmseg"),
])
def test_official_file_names_need_no_read(tmp_path, name, expected):
    from hmkd.models.weights import weights_family

    path = tmp_path / name
    path.write_bytes(b"not read")
    assert weights_family(str(path)).name == expected


def test_hmkd_checkpoints_say_what_they_were_trained_with(tmp_path):
    from hmkd.models.weights import weights_family

    state = {"backbone.conv1.0.weight": torch.zeros(1)}  # a deep stem, but this project's file: its record decides
    model_pth = save(tmp_path / "model.pth", {"model": state, "normalize": "imagenet_rgb", "hmkd_version": "0"})
    step = save(tmp_path / "step.pth", {"model": state, "hmkd_version": "0", "rng": [np.random.get_state()],
                                        "config": {"data": {"normalize": "bgr_mean"}}})
    old = save(tmp_path / "old.pth", {"model": state, "hmkd_version": "0"})
    assert weights_family(model_pth)[:2] == ("hmkd", "imagenet_rgb")
    assert weights_family(step)[:2] == ("hmkd", "bgr_mean")
    assert weights_family(old)[:2] == ("hmkd", None)


def test_unknown_or_unreadable_files_have_no_family(tmp_path):
    from hmkd.models.weights import weights_family

    assert weights_family(save(tmp_path / "other.pth", {"head.fc.weight": torch.zeros(1)})) is None
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x02garbage")
    assert weights_family(str(bad)) is None


class _Runs:
    def __reduce__(self):
        import os

        return (os.mkdir, (self.target,))


def test_reading_key_names_runs_no_code_from_the_file(tmp_path):
    from hmkd.models.weights import read_structure

    payload = _Runs()
    payload.target = str(tmp_path / "made_by_the_file")
    obj = read_structure(save(tmp_path / "evil.pth", {"conv1.weight": torch.zeros(2), "x": payload}))
    assert set(obj) == {"conv1.weight", "x"} and not isinstance(obj["conv1.weight"], torch.Tensor)
    assert not (tmp_path / "made_by_the_file").exists()


def test_every_family_names_a_known_normalisation():
    from hmkd.data import NORMALIZATIONS
    from hmkd.models.weights import WEIGHT_FAMILIES

    assert {normalize for normalize, _ in WEIGHT_FAMILIES.values()} <= set(NORMALIZATIONS)
