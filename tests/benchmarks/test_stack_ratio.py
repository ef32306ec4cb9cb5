"""The stack ratio benchmark: a worker per variant, timed in turn, ratios to the legacy worker, and its table rows.
Both "stacks" are this interpreter here (the real run names .venv and .venv-modern), so the driver, the worker
protocol and the fallbacks of the torch 2 switches on torch 1.11 are what is checked, not the figures."""
import json
import sys

import pytest

from hmkd.benchmarks import stack_ratio, table
from hmkd.compat import CPU_BF16_AUTOCAST


@pytest.mark.slow
def test_every_variant_answers_and_is_divided_by_legacy_round_by_round(tmp_path, capsys):
    out = tmp_path / "results"
    assert stack_ratio.main(["--teacher", "segformer_tiny", "--student", "deeplabv3_tiny", "--size", "32x48",
                             "--batch", "2", "--threads", "1", "--reps", "2", "--warmup", "1", "--legacy-python",
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
    assert [r[0] for r in rows] == ["stack_ratio"] * 3 and rows[0][3] == "<= 1"
    assert "step time modern (torch" in rows[0][1] and "step time modern sdpa+bf16" in rows[2][1]


def test_a_missing_stack_is_skipped_with_its_setup_command(tmp_path, capsys):
    assert stack_ratio.main(["--legacy-python", sys.executable, "--modern-python", str(tmp_path / "none"),
                             "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "skipped: no modern Python at" in printed and "(make setup STACK=modern)" in printed
    assert not (tmp_path / "stack_ratio.json").exists()
