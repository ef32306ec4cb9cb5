"""The memory benchmark measures what it says: chunking must show up as a much smaller peak than the direct formula."""
import json

from hmkd.benchmarks import context_memory


def test_chunked_context_peaks_far_below_the_direct_formula(tmp_path):
    # 2048 positions: the direct affinity and its softmax are 16 MiB each, a 128-query chunk 1 MiB.
    result = context_memory.main(["--hw", "32x64", "--channels", "32", "--chunk", "128", "--reps", "1",
                                  "--device", "cpu", "--out", str(tmp_path)])
    context, hfa = result["scopes"]["context"], result["scopes"]["hfa"]
    assert context["direct"]["median_mib"] > 30
    assert result["ratio"] == context["ratio"] < 0.3
    assert hfa["chunked"]["median_mib"] < hfa["direct"]["median_mib"]
    with open(tmp_path / "context_memory_cpu.json") as handle:
        assert json.load(handle)["positions"] == 2048


def test_hfa_scope_swaps_the_context_only_for_the_call():
    from hmkd.losses.distill import hfa

    original = hfa.global_context
    context_memory.build_call(8, 8, 16, 16, "hfa", "direct", "cpu")()
    assert hfa.global_context is original
