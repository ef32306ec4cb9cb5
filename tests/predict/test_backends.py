"""The three backends are one code path: torch, onnxruntime and TorchScript (files written by hmkd export) give the
same logits to 1e-4 on the same decoded images, whole and sliding-window with flip; every kind of --model path is
told apart, and the ones that are none of them, or lack what predict needs, are one error naming them."""
import os
import shutil

import numpy as np
import pytest
import torch

from hmkd.data.transforms import Normalize
from hmkd.deploy import export_run
from hmkd.deploy.formats import FORMATS
from hmkd.deploy.student import StudentLogits
from hmkd.predict import PredictOptions, load_backend, predict_batch
from hmkd.predict.reading import Conversions, read_image
from hmkd.predict.sources import expand_sources

WHOLE = PredictOptions()
SLIDE_FLIP = PredictOptions(mode="slide", crop_size=(32, 40), stride=(16, 20), flip=True, batch_windows=3)


def batches(folder, normalize):
    """The folder's images decoded as predict decodes them, grouped by size."""
    groups = {}
    norm = Normalize(normalize)
    for item in expand_sources([folder]):
        image = read_image(item.path, Conversions())
        chw = np.empty((3,) + image.shape[:2], np.float32)
        norm.into_chw(image, chw)
        groups.setdefault(image.shape, []).append(chw)
    return list(groups.values())


@pytest.mark.parametrize("model_name, protocols", [("deeplabv3_tiny", (WHOLE, SLIDE_FLIP)),
                                                   ("segformer_tiny", (WHOLE,))])
def test_torch_onnx_and_torchscript_agree_to_1e4(run_dir, image_folder, model_name, protocols):
    run, _ = run_dir(model_name)
    # exported as hmkd export does; its own check is skipped, since this test makes the same one on real images
    files = {f: export_run(run.path, f, size=(64, 96), verify=False).path for f in ("onnx", "torchscript")}
    backends = [load_backend(run.path, "cpu")] + [load_backend(files[f], "cpu") for f in ("onnx", "torchscript")]
    assert [b.name for b in backends] == ["torch", "onnxruntime", "torchscript"]
    assert all(b.class_names == ["road", "car", "sky"] and b.normalize == "imagenet_rgb" for b in backends)
    groups = batches(image_folder, "imagenet_rgb")
    assert sorted(len(g) for g in groups) == [1, 1, 4]   # three sizes; one batch of four
    for options in protocols:   # sliding windows and flip are the same code for every model: one model runs them
        for group in groups:
            expected = predict_batch(backends[0], group, options)
            assert expected.shape[1:] == (3,) + group[0].shape[1:]
            for backend in backends[1:]:
                got = predict_batch(backend, group, options)
                assert got.shape == expected.shape
                diff = float((got - expected).abs().max())
                assert diff <= 1e-4, (backend.name, options.mode, diff)


def test_model_pth_alone_and_in_its_run(run_dir, image_folder, tmp_path):
    run, _ = run_dir()
    group = batches(image_folder, "imagenet_rgb")[0]
    from_run = predict_batch(load_backend(run.path, "cpu"), group, WHOLE)
    in_run = load_backend(run.model, "cpu")
    assert in_run.name == "torch" and in_run.path == run.model
    assert torch.equal(predict_batch(in_run, group, WHOLE), from_run)
    alone = str(tmp_path / "alone" / "student.pth")
    os.makedirs(os.path.dirname(alone))
    shutil.copy(run.model, alone)
    backend = load_backend(alone, "cpu")   # no config.yaml, no eval.json beside it: names from the class count
    assert backend.class_names == ["class_0", "class_1", "class_2"] and backend.normalize == "imagenet_rgb"
    assert torch.equal(predict_batch(backend, group, WHOLE), from_run)
    assert load_backend(alone, "cpu", classes="road,car,sky").class_names == ["road", "car", "sky"]
    with pytest.raises(ValueError, match="has 3 classes but 2 class names were given"):
        load_backend(alone, "cpu", classes="road,car")


def test_exported_file_without_metadata_needs_normalize_and_classes(run_dir, image_folder, tmp_path):
    run, model = run_dir()
    module = StudentLogits(model).eval()
    bare = str(tmp_path / "bare.onnx")
    with open(bare, "wb") as handle:   # the export code's own serialisation, with no hmkd.* metadata in it
        handle.write(FORMATS["onnx"].serialize(module, torch.zeros(1, 3, 40, 56), {}))
    with pytest.raises(ValueError, match="bare.onnx has no hmkd.\\* metadata .* give --normalize"):
        load_backend(bare, "cpu")
    with pytest.raises(ValueError, match="has no hmkd"):
        load_backend(bare, "cpu", normalize="imagenet_rgb")
    backend = load_backend(bare, "cpu", normalize="imagenet_rgb", classes="3")
    group = batches(image_folder, "imagenet_rgb")[0]
    reference = predict_batch(load_backend(run.path, "cpu"), group, WHOLE)
    assert float((predict_batch(backend, group, WHOLE) - reference).abs().max()) <= 1e-4
    with pytest.warns(UserWarning, match="--normalize is ignored: .* records its normalisation"):
        load_backend(run.path, "cpu", normalize="bgr_mean")


def test_paths_of_no_accepted_kind(tmp_path):
    text = tmp_path / "weights.bin"
    text.write_text("nothing")
    foreign = str(tmp_path / "foreign.pt")
    torch.save({"weight": torch.zeros(2)}, foreign)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x00\x01 not protobuf")
    for path in (str(text), foreign):
        with pytest.raises(ValueError, match="--model %s is none of the accepted kinds: a run directory" % path):
            load_backend(path, "cpu")
    with pytest.raises(ValueError, match="broken.onnx cannot be read as onnx"):
        load_backend(str(broken), "cpu")
    with pytest.raises(FileNotFoundError, match="--model %s does not exist" % (tmp_path / "nope.onnx")):
        load_backend(str(tmp_path / "nope.onnx"), "cpu")
    with pytest.raises(ValueError, match="%s is not DONE" % tmp_path):   # a folder is a run directory
        load_backend(str(tmp_path), "cpu")
    with pytest.raises(ValueError, match="--device must be auto, cpu or cuda"):
        load_backend(str(tmp_path), "gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda, but no CUDA device is visible"):
            load_backend(str(tmp_path), "cuda")
