from hmkd.benchmarks import table
from hmkd.benchmarks.common import write_result


def test_each_figure_is_judged_against_its_target(tmp_path, capsys):
    out = str(tmp_path)
    base = {"hw": [64, 128], "channels": 256, "device": "cpu", "chunked_peak_mib": 82.0, "direct_peak_mib": 786.0}
    write_result(out, "context_memory_cpu", dict(base, ratio=82.0 / 786.0))
    write_result(out, "context_memory_cuda", dict(base, device="cuda", ratio=0.2))
    write_result(out, "mystery", {"x": 1})
    rows = {r[0]: r for r in table.rows(out)}
    assert rows["context_memory_cpu"][2:5] == ["0.104", "<= 0.125", "ok"]
    assert rows["context_memory_cuda"][2:5] == ["0.200", "<= 0.125", "MISS"]
    assert rows["mystery"][1] == "(no reader for this file)"
    assert table.main([out]) == 0
    assert "3 figures, 2 with a target, 1 missed" in capsys.readouterr().out


def test_empty_folder_is_an_error(tmp_path, capsys):
    assert table.main([str(tmp_path)]) == 1
    assert "no benchmark results in" in capsys.readouterr().out
