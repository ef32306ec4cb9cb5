"""Decoding inputs: 8-bit colour and grey exactly as evaluation reads them; 16-bit and RGBA converted as
IMREAD_COLOR does, with one warning per kind per run, or refused; bad files one BadInput naming them."""
import warnings

import cv2
import numpy as np
import pytest
from predict_files import blocky, write_image, write_video

from hmkd.data.files import read_image as eval_read_image
from hmkd.predict.reading import BadInput, Conversions, Video, read_image


def test_8_bit_inputs_are_read_as_evaluation_reads_them(tmp_path):
    rng = np.random.default_rng(0)
    paths = [write_image(tmp_path / "rgb.png", blocky(rng, 20, 30)), write_image(tmp_path / "rgb.jpg", blocky(
        rng, 20, 30)), write_image(tmp_path / "grey.png", blocky(rng, 21, 31, 1)),
             write_image(tmp_path / "grey.jpg", blocky(rng, 21, 31, 1))]
    conversions = Conversions()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in paths:
            got = read_image(path, conversions)
            assert got.dtype == np.uint8 and got.shape[2] == 3
            np.testing.assert_array_equal(got, eval_read_image(path))
    assert conversions.summary() == ""


def test_16_bit_and_rgba_are_converted_with_one_warning_each(tmp_path):
    rng = np.random.default_rng(1)
    paths = {"16-bit": [write_image(tmp_path / ("deep%d.png" % i), blocky(rng, 12, 14, dtype=np.uint16, top=65536))
                        for i in range(2)] + [write_image(tmp_path / "deep_grey.png", blocky(
                            rng, 12, 14, 1, dtype=np.uint16, top=65536))],
             "RGBA": [write_image(tmp_path / ("alpha%d.png" % i), blocky(rng, 12, 14, 4)) for i in range(2)]}
    conversions = Conversions()
    with pytest.warns(UserWarning) as caught:
        for kind, files in paths.items():
            for path in files:
                np.testing.assert_array_equal(read_image(path, conversions), cv2.imread(path, cv2.IMREAD_COLOR))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages
    assert "deep0.png is 16-bit" in messages[0] and "alpha0.png is RGBA" in messages[1]
    assert conversions.summary() == "3 16-bit converted, 2 RGBA converted"
    with pytest.raises(BadInput, match="alpha0.png is RGBA; --strict-input refuses it"):
        read_image(paths["RGBA"][0], Conversions(strict=True))


def test_bad_files_are_one_line_naming_them(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello, not a picture\n")
    good = write_image(tmp_path / "cut.jpg", blocky(np.random.default_rng(2), 32, 32))
    with open(good, "rb") as handle:
        data = handle.read()
    with open(good, "wb") as handle:
        handle.write(data[:len(data) // 2])
    float_tiff = write_image(tmp_path / "float.tiff", np.ones((8, 8), np.float32))
    cases = {str(empty): "is empty (0 bytes)", str(text): "cannot be decoded", good: "cannot be decoded",
             float_tiff: "holds float32 values", str(tmp_path): "cannot be read"}
    for path, expected in cases.items():
        with pytest.raises(BadInput) as caught:
            read_image(path, Conversions())
        message = str(caught.value)
        assert path in message and expected in message and "\n" not in message, message


def test_videos_read_in_order_or_refused(tmp_path):
    rng = np.random.default_rng(3)
    frames = [blocky(rng, 24, 32) for _ in range(3)]
    video = Video(write_video(tmp_path / "v.avi", frames))
    assert video.fps == 5.0 and video.frame_count == 3
    read = list(video.frames())
    assert [i for i, _ in read] == [0, 1, 2] and all(f.shape == (24, 32, 3) for _, f in read)
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(BadInput, match="video %s cannot be opened" % fake):
        Video(str(fake))
