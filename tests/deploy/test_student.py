"""What an exported file records, read back with each format's own library: normalisation as
hmkd.data.transforms defines it, the run's class names, the package version, the input and output layout."""
import json

import numpy as np
import onnx
import pytest
import torch
import yaml

import hmkd
from hmkd.data.transforms import NORMALIZATIONS, Normalize
from hmkd.deploy import METADATA_KEYS, export_run, read_metadata


def raw_metadata(path, fmt):
    """The file's metadata through onnx / torch.jit directly (not through hmkd.deploy's reader)."""
    if fmt == "onnx":
        return {p.key: p.value for p in onnx.load(path).metadata_props}
    extra = {key: "" for key in METADATA_KEYS}
    torch.jit.load(path, _extra_files=extra)
    return {key: value.decode() if isinstance(value, bytes) else value for key, value in extra.items()}


@pytest.mark.parametrize("fmt,name,normalize", [("onnx", "deeplabv3_tiny", "imagenet_rgb"),
                                                ("torchscript", "segformer_tiny", "bgr_mean")])
def test_metadata_read_back(finished_run, fmt, name, normalize):
    names = ("road", "traffic light", "sky")
    run, _ = finished_run(name, names, normalize)
    result = export_run(run.path, fmt, verify=False)
    raw = raw_metadata(result.path, fmt)
    assert set(raw) == set(METADATA_KEYS)
    meta = {key: json.loads(value) for key, value in raw.items()}
    assert meta == read_metadata(result.path)
    assert meta["hmkd.version"] == hmkd.__version__
    assert meta["hmkd.model"] == name
    assert meta["hmkd.class_names"] == list(names)
    to_rgb, mean, std = NORMALIZATIONS[normalize]
    norm = meta["hmkd.normalization"]
    assert norm["mode"] == normalize and norm["channel_order"] == ("RGB" if to_rgb else "BGR")
    assert norm["mean"] == list(mean) and norm["std"] == list(std) and norm["pixel_range"] == [0, 255]
    assert meta["hmkd.input"]["layout"] == "NCHW" and meta["hmkd.input"]["dtype"] == "float32"
    out = meta["hmkd.output"]
    assert out["resolution"] == "input" and out["channels"] == 3 and out["layout"] == "NCHW"
    assert out["model_output_stride"] == (8 if name.startswith("deeplab") else 4)
    assert meta["hmkd.source"]["step"] == 7


def test_recorded_normalisation_reproduces_the_transform(finished_run):
    """A runtime without this package, following only the metadata, feeds the network what training fed it."""
    run, _ = finished_run("deeplabv3_tiny", normalize="imagenet_rgb")
    norm = read_metadata(export_run(run.path, "onnx", verify=False).path)["hmkd.normalization"]
    image_bgr = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    pixels = image_bgr[..., ::-1] if norm["channel_order"] == "RGB" else image_bgr
    by_metadata = (pixels.astype(np.float32) - np.array(norm["mean"], np.float32)) / np.array(norm["std"], np.float32)
    np.testing.assert_allclose(by_metadata, Normalize(norm["mode"])(image_bgr), rtol=1e-6, atol=1e-5)


def test_the_checkpoint_record_decides_an_auto_normalisation(finished_run):
    """model.normalize: auto in config.yaml: the file records what model.pth says the student was trained on."""
    run, _ = finished_run("deeplabv3_tiny", normalize="bgr_mean")
    with open(run.config) as handle:
        cfg = yaml.safe_load(handle)
    cfg["model"]["normalize"], cfg["data"]["normalize"] = "auto", "imagenet_rgb"
    with open(run.config, "w") as handle:
        yaml.safe_dump(cfg, handle)
    meta = read_metadata(export_run(run.path, "torchscript", verify=False).path)
    assert meta["hmkd.normalization"]["mode"] == "bgr_mean"
