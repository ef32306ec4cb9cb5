"""The stack ratio benchmark: a worker per variant, timed in turn, ratios to the legacy worker, and its table rows.
Both "stacks" are this interpreter here (the real run names .venv and .venv-modern), so the driver, the worker
protocol and the fallbacks of the torch 2 switches on torch 1.11 are what is checked, not the figures."""
import json
import sys

import pytest

from hmkd.benchmarks import stack_ratio, table
from hmkd.benchmarks.common import write_result
from hmkd.compat import CPU_BF16_AUTOCAST


@pytest.mark.slow
def test_every_variant_answers_and_is_divided_by_legacy_round_by_round(tmp_path, capsys):
    out = tmp_path / "results"
    assert stack_ratio.main(["--teacher", "segformer_tiny", "--student", "deeplabv3_tiny", "--size", "32x48",
                             "--batch", "2", "--threads", "1", "--reps", "2", "--warmup", "1", "--bf16", "always", "--legacy-python",
                             sys.executable, "--modern-python", sys.executable, "--out", str(out)]) == 0
    result = json.loads((out / "stack_ratio.json").read_text())
    assert set(result["variants"]) == set(stack_ratio.VARIANTS)
    for name, variant in result["variants"].items():
        assert variant["threads"] == 1 and variant["step"]["reps"] == 2 and variant["step"]["median_s"] > 0
        assert variant["ratio"] > 0
    assert result["variants"]["legacy"]["ratio"] == 1.0 and result["ratio"] == result["variants"]["modern"]["ratio"]
    bf16 = result["variants"]["modern_sdpa_bf16"]["precision"]
    assert bf16 == ("bf16" if CPU_BF16_AUTOCAST else "fp32")  # torch 1.11 falls back to float32
    assert "modern_sdpa_bf16" in capsys.readouterr().out
    rows = table.rows(str(out))
    assert [r[0] for r in rows] == ["stack_ratio"] * 3 and rows[0][3] == "<= 1" and result["skipped"] == {}
    assert "step time modern (torch" in rows[0][1] and "step time modern sdpa+bf16" in rows[2][1]


def test_a_missing_stack_is_skipped_with_its_setup_command(tmp_path, capsys):
    assert stack_ratio.main(["--legacy-python", sys.executable, "--modern-python", str(tmp_path / "none"),
                             "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "skipped: no modern Python at" in printed and "(make setup STACK=modern)" in printed
    assert not (tmp_path / "stack_ratio.json").exists()


def test_the_bf16_variant_is_left_out_where_the_cpu_would_emulate_it(tmp_path, monkeypatch):
    started = []

    class Recorded:
        """A worker that answers 1 s a step, recording which variants were started."""

        def __init__(self, name, python, switches, args):
            self.name, self.info = name, {"torch": "x", "precision": "fp32"}
            started.append(name)

        def step(self):
            return 1.0

        def close(self):
            pass

    monkeypatch.setattr(stack_ratio, "Worker", Recorded)
    monkeypatch.setattr(stack_ratio, "cpu_bf16_native", lambda: False)
    args = stack_ratio.parse_args(["--legacy-python", sys.executable, "--modern-python", sys.executable])
    result = stack_ratio.run(args)
    assert started == ["legacy", "modern", "modern_sdpa"]
    assert result["skipped"] == {"modern_sdpa_bf16": "no native bf16 on this CPU (--bf16 always runs it)"}
    write_result(str(tmp_path), "stack_ratio", result)
    assert table.rows(str(tmp_path))[-1][2] == "not run: no native bf16 on this CPU (--bf16 always runs it)"
    monkeypatch.setattr(stack_ratio, "cpu_bf16_native", lambda: True)
    started.clear()
    assert stack_ratio.run(args)["skipped"] == {} and started[-1] == "modern_sdpa_bf16"
