"""The memory benchmark measures what it says: chunking must show up as a much smaller peak than the direct formula."""
import json

from hmkd.benchmarks import context_memory


def test_chunked_context_peaks_far_below_the_direct_formula(tmp_path):
    # 2048 positions: the direct affinity and its softmax are 16 MiB each, a 128-query chunk 1 MiB.
    result = context_memory.main(["--hw", "32x64", "--channels", "32", "--chunk", "128", "--reps", "1",
                                  "--variants", "chunked,direct", "--device", "cpu", "--out", str(tmp_path)])
    context, hfa = result["scopes"]["context"], result["scopes"]["hfa"]
    assert context["direct"]["median_mib"] > 30
    assert result["ratio"] == context["ratio"] < 0.3
    assert hfa["chunked"]["median_mib"] < hfa["direct"]["median_mib"]
    with open(tmp_path / "context_memory_cpu.json") as handle:
        assert json.load(handle)["positions"] == 2048


def test_each_variant_runs_the_implementation_the_config_names(monkeypatch):
    """The hfa scope builds the term with ``context=variant`` (loss.terms.hfa.context), the context scope calls
    context_function's choice: no swapping of module globals."""
    import importlib

    global_context = importlib.import_module("hmkd.losses.distill.global_context")  # the package exports a function
    hfa = importlib.import_module("hmkd.losses.distill.hfa")                       # of the same name
    called = []
    real = global_context.context_function

    def recording(variant, chunk=1024):
        called.append(variant)
        return real(variant, chunk)
    monkeypatch.setattr(global_context, "context_function", recording)
    monkeypatch.setattr(hfa, "context_function", recording)
    for variant in context_memory.measured_variants():
        context_memory.build_call(8, 8, 16, 16, "hfa", variant, "cpu")()
        context_memory.build_call(8, 8, 16, 16, "context", variant, "cpu")()
    assert called == [v for v in context_memory.measured_variants() for _ in range(2)]


def test_sdpa_and_timing_rows(tmp_path):
    result = context_memory.main(["--hw", "16x16", "--channels", "16", "--chunk", "64", "--reps", "1", "--time-reps",
                                  "1", "--cpu-in-process", "--device", "cpu", "--out", str(tmp_path), "--name", "cm"])
    for scope in ("context", "hfa"):
        for variant in context_memory.VARIANTS:
            run = result["scopes"][scope][variant]
            if variant in result["variants"]:
                assert run["time"]["reps"] == 1 and run["median_mib"] >= 0
            else:  # torch 1.11: no SDPA
                assert variant == "sdpa" and run.startswith("not measured: torch")
    assert (tmp_path / "cm.json").exists()
