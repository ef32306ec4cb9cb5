"""bench-gpu's run phase (hmkd/benchmarks/gpu.py) on the CPU at tiny sizes (--smoke): every benchmark wired, every
result read by the table. The setup phase (tools/bench_gpu.py) is tested in tests/tools; the GPU itself is not here.
"""
import json
import os

from hmkd.benchmarks import gpu

EXPECTED = ("distill_step_gpu_fp32", "distill_step_gpu_fp16", "distill_step_gpu_bf16", "context_memory_cpu",
            "eval_throughput_cpu", "step_formats_smoke", "data_pipeline")


def test_smoke_run_writes_every_result_and_the_table_reads_them(tmp_path, capsys):
    assert gpu.main(["--smoke", "--out", str(tmp_path)]) == 0
    assert sorted(os.listdir(tmp_path)) == sorted(name + ".json" for name in EXPECTED)
    with open(tmp_path / "distill_step_gpu_bf16.json") as handle:
        step = json.load(handle)
    assert step["amp"] == "bf16" and step["ratio"] > 0 and step["teacher"] == "segformer_tiny"
    assert step["precision"] in ("bf16", "fp32")  # the CPU runs bf16 on torch 2 only
    assert step["macs"]["terms_forward"] > 0 and step["mac_ratio"] > 1.0  # GLA and HFA add arithmetic
    printed = capsys.readouterr().out
    assert "no reader" not in printed and "figures," in printed
