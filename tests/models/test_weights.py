"""Weight files: corrupt, wrong-shape, missing-key and checksum errors name the file and the keys."""
import hashlib

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
