"""bench-gpu's run phase on the CPU at tiny sizes (--smoke): every benchmark wired, every result read by the table.
The setup phase's pin handling is checked against the real requirements file; the GPU itself is not here."""
import json
import os

import pytest

from hmkd.benchmarks import gpu

EXPECTED = ("distill_step_gpu_fp32", "distill_step_gpu_amp", "context_memory_cpu", "eval_throughput_cpu",
            "step_formats_smoke", "data_pipeline")


def test_smoke_run_writes_every_result_and_the_table_reads_them(tmp_path, capsys):
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(name + ".json" for name in EXPECTED)
    with open(tmp_path / "distill_step_gpu_amp.json") as handle:
        step = json.load(handle)
    assert step["amp"] is True and step["ratio"] > 0 and step["teacher"] == "segformer_tiny"
    assert step["macs"]["terms_forward"] > 0 and step["mac_ratio"] > 1.0  # GLA and HFA add arithmetic
    printed = capsys.readouterr().out
    assert "no reader" not in printed and "figures," in printed


def test_pins_get_the_cuda_tag_and_skip_mmcv():
    pins = gpu.pinned_requirements("cu113")
    names = {p.split("==")[0].lower(): p for p in pins}
    assert names["torch"] == "torch==1.11.0+cu113" and names["torchvision"] == "torchvision==0.12.0+cu113"
    assert "mmcv-full" not in names


def test_a_wrong_python_is_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYTHON", "/bin/true-not-python")
    with pytest.raises(gpu.SetupError, match="PYTHON=/bin/true-not-python is not a Python 3.8"):
        gpu.find_python38(str(tmp_path), "uv<1")
