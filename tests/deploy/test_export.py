"""Exported students against eager torch (onnxruntime and torch.jit as the runtimes), at sizes other than the traced
one, what a failed export leaves behind, and the exported file's mode under the umask."""
import os

import onnx
import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from modes import UMASKS, umask, wrong_modes

from hmkd.deploy import TOLERANCE, export_run
from hmkd.deploy.export import check_sizes

MODELS = ("deeplabv3_tiny", "segformer_tiny")
# every decode head of the zoo (mmseg's ASPPHead and SegformerHead beside CIRKD's and the all-MLP one)
HEADS = [(name, {}) for name in MODELS] + [
    ("deeplabv3_tiny", {"head": "mmseg", "deep_stem": True, "stem_width": 32, "basic_block_dilation": "first"}),
    ("segformer_tiny", {"head": "mmseg"})]
# (batch, height, width): neither the traced 48x64 nor the export's own check sizes; non-square, H and W both differ.
SIZES = ((1, 40, 56), (2, 72, 48))


def eager_logits(model, images):
    """The oracle: the model's own forward, logits resized bilinearly to the input as evaluation does."""
    with torch.no_grad():
        logits = model(images).logits
    return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def inputs(batch, height, width):
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(height * width))


@pytest.mark.parametrize("name,options", HEADS)
def test_onnxruntime_equals_torch_at_two_sizes(finished_run, name, options):
    run, model = finished_run(name, options=options)
    result = export_run(run.path, "onnx")
    assert result.path == os.path.abspath(os.path.join(run.path, "model.onnx"))
    assert all(diff <= TOLERANCE for diff in result.max_abs_diff.values()) and len(result.max_abs_diff) == 2
    proto = onnx.load(result.path)
    onnx.checker.check_model(proto)
    assert [op.version for op in proto.opset_import if op.domain in ("", "ai.onnx")] == [14]
    for value in (proto.graph.input[0], proto.graph.output[0]):  # batch, height and width are named, not fixed
        dims = value.type.tensor_type.shape.dim
        assert [dims[i].dim_param for i in (0, 2, 3)] == ["batch", "height", "width"], value.name
    assert proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 3
    session = onnxruntime.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    for size in SIZES:
        images = inputs(*size)
        got = torch.from_numpy(session.run(["logits"], {"images": images.numpy()})[0])
        expected = eager_logits(model, images)
        assert got.shape == expected.shape == (size[0], 3) + size[1:]
        assert float((got - expected).abs().max()) <= 1e-4, size


@pytest.mark.parametrize("name", MODELS)
def test_torchscript_equals_torch_at_two_sizes(finished_run, name):
    run, model = finished_run(name)
    result = export_run(run.path, "torchscript")
    assert result.path.endswith("model.torchscript.pt")
    loaded = torch.jit.load(result.path)
    # the student alone: exactly model.pth's tensors (no alignment module, no teacher)
    assert set(loaded.state_dict()) == {"model." + key for key in model.state_dict()}
    for size in SIZES:
        images = inputs(*size)
        with torch.no_grad():
            got = loaded(images)
        expected = eager_logits(model, images)
        assert got.shape == expected.shape == (size[0], 3) + size[1:]
        assert float((got - expected).abs().max()) <= 1e-4, size


def test_output_elsewhere_and_traced_size(finished_run, tmp_path):
    run, _ = finished_run()
    target = tmp_path / "deploy" / "nested" / "r18.onnx"
    result = export_run(run.path, "onnx", output=str(target), size=(32, 80))
    assert os.path.isfile(str(target)) and not os.path.exists(os.path.join(run.path, "model.onnx"))
    assert sorted(result.max_abs_diff) == ["24x40", "32x80"]
    assert os.path.getsize(str(target)) == result.bytes


@pytest.mark.parametrize("mask", UMASKS)
def test_the_export_gets_the_mode_open_gives(finished_run, tmp_path, mask):
    """A deployment team reads the exported file: 0666 less the umask (0644, 0664), not mkstemp's 0600."""
    run, _ = finished_run("segformer_tiny")
    with umask(mask):
        result = export_run(run.path, "onnx", output=str(tmp_path / "deploy" / "student.onnx"))
    assert result.path == str(tmp_path / "deploy" / "student.onnx")
    assert wrong_modes(tmp_path / "deploy", mask) == {}


def test_check_sizes_differ_in_height_and_width():
    first, second = check_sizes([512, 1024])
    assert first == (512, 1024) and second[0] != 512 and second[1] != 1024
    assert second[0] / second[1] != first[0] / first[1]


def test_failed_check_publishes_nothing(finished_run, monkeypatch):
    run, _ = finished_run("segformer_tiny")
    target = os.path.join(run.path, "model.onnx")
    with open(target, "wb") as handle:
        handle.write(b"the previous export")
    monkeypatch.setattr("hmkd.deploy.export.TOLERANCE", -1.0)  # any difference, even 0, now fails the check
    with pytest.raises(ValueError, match="exported onnx differs from torch by .* nothing written to"):
        export_run(run.path, "onnx")
    with open(target, "rb") as handle:
        assert handle.read() == b"the previous export"
    assert not [f for f in os.listdir(run.path) if f.startswith(".model.onnx.tmp")]


def test_unknown_format_fails_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'tflite'; choose one of onnx, torchscript"):
        export_run(str(tmp_path / "nowhere"), "tflite")

