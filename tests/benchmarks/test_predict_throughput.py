"""The predict throughput benchmark at a tiny size: its JSON (three runtimes, each against its own forward), the
exported files checked against eager, and its printed lines."""
import json

from hmkd.benchmarks import predict_throughput


def test_result_and_printed_lines(tmp_path, capsys):
    predict_throughput.main(["--model", "deeplabv3_tiny", "--size", "40x64", "--images", "3", "--reps", "2",
                             "--warmup", "1", "--format", "png", "--out", str(tmp_path)])
    with open(str(tmp_path / "predict_throughput_cpu.json")) as handle:
        result = json.load(handle)
    assert result["size"] == [40, 64] and result["images"] == 3 and result["outputs"] == ["palette", "overlay"]
    runtimes = result["runtimes"]
    assert set(runtimes) == {"torch_eager", "onnxruntime", "torch.jit"}
    for name, row in runtimes.items():
        assert row["reps"] == 2 and row["images_per_s"] > 0 and row["forward"]["reps"] == 2
        assert row["ratio"] > 0 and abs(row["images_per_s"] - 3 / row["median_s"]) < 1e-6 * row["images_per_s"]
        assert name == "torch_eager" or row["max_abs_diff"] <= 1e-4
    out = capsys.readouterr().out
    assert "predict deeplabv3_tiny 40x64 png CPU" in out and "onnxruntime" in out and "forward alone" in out
