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


def test_markdown_rows_and_the_speed_path_labels(tmp_path):
    out = str(tmp_path)
    step = {"teacher": "segformer_b4", "student": "deeplabv3_r18", "size": [512, 1024], "batch": 8, "device": "cuda",
            "ratio": 1.05, "images_per_s": 40.0, "peak_memory_mib": 30000.0, "floor_peak_memory_mib": 20000.0}
    write_result(out, "distill_step_bf16_sdpa", dict(step, amp="bf16", precision="bf16", attention="sdpa",
                                                     term_options={"hfa": {"weight": 1.0, "context": "sdpa"}}))
    write_result(out, "distill_step_cpu", dict(step, device="cpu", amp="fp16", precision="fp32", ratio_spread=0.02,
                                               grad_share={"interval": 1000, "diagnostic_step_over_plain": 1.8,
                                                           "ratio_with_diagnostic": 1.0508, "ratio_move": 0.0008}))
    write_result(out, "distill_step_old", dict(step, amp=True))  # files written before bf16: amp true = fp16
    table_rows = table.rows(out)
    figures = {r[1]: r for r in table_rows}
    where = "segformer_b4->deeplabv3_r18 512x1024 x8 cuda bf16 attention=sdpa context=sdpa"
    assert figures["step ratio " + where][2:5] == ["1.050", "<= 1.1", "ok"]
    assert figures["peak memory %s (floor 20000 MiB)" % where][2] == "30000 MiB"
    assert "images/s segformer_b4->deeplabv3_r18 512x1024 x8 cpu fp16 (ran fp32)" in figures
    assert "images/s segformer_b4->deeplabv3_r18 512x1024 x8 cuda fp16" in figures
    assert figures["  with the gradient-share diagnostic every 1000 steps (its step 1.80x a plain one; move +0.0008, "
                   "spread 0.020) segformer_b4->deeplabv3_r18 512x1024 x8 cpu fp16 (ran fp32)"][2] == "1.051"
    text = table.markdown(table_rows)
    lines = text.splitlines()
    assert lines[0] == "| benchmark | figure | value | target | status | load |"
    assert len([line for line in lines if line.startswith("| distill_step")]) == len(table_rows)
    assert lines[-1].startswith("%d figures" % len(table_rows))
    assert table.main([out, "--markdown", str(tmp_path / "t.md")]) == 0
    assert (tmp_path / "t.md").read_text() == text
