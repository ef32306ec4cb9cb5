"""The exported-student latency benchmark at a tiny size: its JSON, its check of the outputs, its table rows."""
import json

from hmkd.benchmarks import export_latency, table


def test_result_and_table_rows(tmp_path, capsys):
    export_latency.main(["--models", "deeplabv3_tiny", "--size", "24x40", "--reps", "2", "--warmup", "1",
                         "--out", str(tmp_path)])
    with open(str(tmp_path / "export_latency_cpu.json")) as handle:
        result = json.load(handle)
    assert result["size"] == [24, 40] and result["batch"] == 1 and result["device"] == "cpu"
    runtimes = result["models"][0]["runtimes"]
    assert set(runtimes) == {"torch_eager", "onnxruntime", "torch.jit"}
    for name in ("onnxruntime", "torch.jit"):
        assert runtimes[name]["max_abs_diff"] <= 1e-4 and runtimes[name]["reps"] == 2 and runtimes[name]["ratio"] > 0
    rows = [r for r in table.rows(str(tmp_path)) if r[0] == "export_latency_cpu"]
    assert len(rows) == 3
    assert rows[0][1].startswith("exported deeplabv3_tiny latency, torch eager (floor) 24x40 batch 1 CPU")
    assert rows[0][2].endswith(" ms")
    assert "onnxruntime / torch eager" in rows[1][1] and float(rows[1][2]) == round(runtimes["onnxruntime"]["ratio"], 3)
    assert "exported deeplabv3_tiny 24x40 batch 1 CPU" in capsys.readouterr().out
