"""hmkd export end to end on a real (tiny) training run, and each bad input as one line, exit 2, nothing written."""
import os

import onnxruntime
import torch
import yaml
from engine_config import tiny_config
from finished_run import write_finished_run
from runner import run_cli

from hmkd.cli.main import main
from hmkd.deploy import read_metadata
from hmkd.rundir import RunDir


def test_export_of_a_trained_run(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config(schedule={"max_iters": 2})))
    run_dir = str(tmp_path / "run")
    trained = run_cli("train", str(config), "--run-dir", run_dir)
    assert trained.returncode == 0, trained.stderr[-2000:]
    exported = run_cli("export", run_dir, "--format", "onnx", "--size", "40x56")
    assert exported.returncode == 0, exported.stderr[-2000:]
    path = RunDir(run_dir).exported("onnx")
    assert "wrote %s (onnx" % path in exported.stdout and "checked against torch: max |diff|" in exported.stdout
    meta = read_metadata(path)
    assert meta["hmkd.class_names"] == ["class_0", "class_1", "class_2"] and meta["hmkd.model"] == "deeplabv3_tiny"
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"images": torch.zeros(1, 3, 24, 72).numpy()})[0]
    assert logits.shape == (1, 3, 24, 72)


def finished_run(tmp_path):
    return write_finished_run(tmp_path / "run", "deeplabv3_tiny", ["road", "car", "sky"])


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hmkd export: error: "), err
    return err


def test_run_dir_problems_are_one_line(tmp_path, capsys):
    assert "does not exist" in one_line_error(capsys, ["export", str(tmp_path / "missing"), "--format", "onnx"])
    run, _ = finished_run(tmp_path)
    os.remove(run.done)
    assert "is not DONE" in one_line_error(capsys, ["export", run.path, "--format", "onnx"])
    run.mark_done({})
    os.remove(run.model)
    assert "has no model.pth" in one_line_error(capsys, ["export", run.path, "--format", "torchscript"])
    assert not [f for f in os.listdir(run.path) if f.startswith("model.")]


def test_format_and_output_problems_are_one_line(tmp_path, capsys):
    run, _ = finished_run(tmp_path)
    err = one_line_error(capsys, ["export", run.path, "--format", "tflite"])
    assert "unknown export format 'tflite'; choose one of onnx, torchscript" in err
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    err = one_line_error(capsys, ["export", run.path, "--format", "onnx", "--output", str(a_file / "m.onnx")])
    assert "cannot write output %s" % (a_file / "m.onnx") in err and "not a folder" in err
    err = one_line_error(capsys, ["export", run.path, "--format", "onnx", "--output", str(tmp_path)])
    assert "is a folder; give a file name" in err
    assert not [f for f in os.listdir(run.path) if f.startswith(("model.onnx", "model.torchscript", ".model"))]

