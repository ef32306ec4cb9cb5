import json

import torch

from hmkd.benchmarks.common import median_ratio, summarize, time_interleaved, write_result


def test_summarize_is_order_free_and_reports_the_spread():
    stats = summarize([3.0, 1.0, 2.0, 4.0, 5.0])
    assert (stats["median_s"], stats["min_s"], stats["max_s"], stats["reps"]) == (3.0, 1.0, 5.0, 5)
    assert stats["spread"] == 4.0 / 3.0


def test_median_ratio_pairs_rounds():
    # Round by round 2, 2, 4: a slow round of both (load) cancels; the median is 2.
    out = median_ratio([2.0, 20.0, 4.0], [1.0, 10.0, 1.0])
    assert out["ratio"] == 2.0 and out["ratio_spread"] == 1.0


def test_time_interleaved_runs_each_function_warmup_plus_reps_in_rotation():
    calls = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, reps=3)
    assert calls == ["a", "b"] + ["a", "b"] * 3
    assert [len(v) for v in times.values()] == [3, 3] and all(t >= 0 for v in times.values() for t in v)


def test_write_result_records_the_machine(tmp_path):
    path = write_result(str(tmp_path / "out"), "thing", {"ratio": 1.5})
    with open(path) as handle:
        result = json.load(handle)
    assert result["ratio"] == 1.5 and result["benchmark"] == "thing"
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"] == torch.__version__
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["thing.json"]  # no temporary left behind
