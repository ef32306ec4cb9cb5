"""The benchmark table: every figure in a results folder's JSON files against its target, one line each.

Usage: python -m hmkd.benchmarks.table [results/] [--markdown FILE]    (FILE: the same rows as a Markdown table)

Each benchmark writes its own JSON; this reads them all back so `make bench` and `make bench-gpu` end with one view
of where the project stands (ok / MISS against a target; plain figures where the issue sets none).
"""
import argparse
import glob
import json
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from hmkd.atomic import atomic_write_text

Row = Tuple[str, str, Optional[float], str]  # figure, value text, target (None = no target), comparison ("<=", ">=")


def _ms(seconds: float) -> str:
    return "%.1f ms" % (1e3 * seconds)


def _switches(r: Dict[str, Any]) -> str:
    """The precision and speed paths a step ran with: " bf16 attention=sdpa" (older files: amp true = fp16)."""
    amp = r.get("amp")
    parts = ["fp16" if amp is True else amp or "fp32"]
    if amp and r.get("precision", parts[0]) != parts[0]:
        parts[0] += " (ran %s)" % r["precision"]
    if r.get("attention", "eager") != "eager":
        parts.append("attention=" + r["attention"])
    context = (r.get("term_options") or {}).get("hfa", {}).get("context")
    if context:
        parts.append("context=" + context)
    if r.get("channels_last"):
        parts.append("channels-last")
    return " ".join(parts)


def _distill_step(r: Dict[str, Any]) -> Iterator[Row]:
    where = "%s->%s %s x%d %s %s" % (r["teacher"], r["student"], "x".join(map(str, r["size"])), r["batch"],
                                     r["device"], _switches(r))
    yield ("step ratio " + where, "%.3f" % r["ratio"], r.get("target", 1.10), "<=")
    if "ratio_same_teacher_work" in r:
        yield ("step ratio against the teacher work the step runs " + where, "%.3f" % r["ratio_same_teacher_work"],
               None, "")
    if "mac_ratio" in r:
        yield ("  the same in multiply-accumulates (the method's arithmetic) " + where, "%.3f" % r["mac_ratio"],
               None, "")
    share = r.get("grad_share")
    if share:
        yield ("  with the gradient-share diagnostic every %d steps (its step %.2fx a plain one; move %+.4f, spread "
               "%.3f) %s" % (share["interval"], share["diagnostic_step_over_plain"], share["ratio_move"],
                             r.get("ratio_spread", 0.0), where), "%.3f" % share["ratio_with_diagnostic"], None, "")
    yield ("images/s " + where, "%.2f" % r["images_per_s"], None, "")
    if "peak_memory_mib" in r:
        floor = r.get("floor_peak_memory_mib")
        yield ("peak memory " + where + ("" if floor is None else " (floor %.0f MiB)" % floor),
               "%.0f MiB" % r["peak_memory_mib"], None, "")


def _context_memory(r: Dict[str, Any]) -> Iterator[Row]:
    shape = "%dx%dx%d %s" % (r["hw"][0], r["hw"][1], r["channels"], r["device"])
    yield ("HFA context peak chunked/direct %s (%.0f / %.0f MiB)" % (shape, r["chunked_peak_mib"],
                                                                    r["direct_peak_mib"]),
           "%.3f" % r["ratio"], r.get("target", 0.125), "<=")
    scopes = r.get("scopes", {})
    hfa = scopes.get("hfa")
    if hfa:
        yield ("whole HFA term peak chunked/direct context (%.0f / %.0f MiB)"
               % (hfa["chunked"]["median_mib"], hfa["direct"]["median_mib"]), "%.3f" % hfa["ratio"], None, "")
    for scope, label in (("context", "HFA context"), ("hfa", "whole HFA term")):
        runs = scopes.get(scope, {})
        for variant in r.get("variants", []):
            run = runs.get(variant)
            if not isinstance(run, dict):
                continue
            if variant == "sdpa":
                yield ("%s peak %s %s" % (label, variant, shape), "%.0f MiB" % run["median_mib"], None, "")
            if "time" in run:
                yield ("%s fwd+bwd time %s %s" % (label, variant, shape), _ms(run["time"]["median_s"]), None, "")


def _distill_quality(r: Dict[str, Any]) -> Iterator[Row]:
    for group, rows in r["groups"].items():
        for row in rows:
            std = row.get("mIoU_std")
            if row["mIoU_mean"] is None:  # no run of it was compared (no finite mIoU)
                yield ("mIoU %s/%s (0 seed(s), context scenes)" % (group, row["label"]), "not compared", None, "")
                continue
            value = "%.2f%s" % (100 * row["mIoU_mean"], "" if std is None else " +- %.2f" % (100 * std))
            if row.get("diff_ci95"):
                value += " (%+.2f, 95%% %+.2f to %+.2f vs %s)" % (100 * row["diff_mean"], 100 * row["diff_ci95"][0],
                                                                   100 * row["diff_ci95"][1], row["baseline"])
            yield ("mIoU %s/%s (%d seed(s), context scenes)" % (group, row["label"], row["seeds"]), value, None, "")


def _data_pipeline(r: Dict[str, Any]) -> Iterator[Row]:
    yield ("data sample / decode floor (%s vs %s, 1 thread)" % (_ms(r["sample"]["median_s"]),
                                                               _ms(r["decode_floor"]["median_s"])),
           "%.2f" % r["ratio"], r.get("target", 1.3), "<=")
    yield ("data samples/s per worker process", "%.1f" % r["samples_per_s_per_worker"], None, "")
    demand = r.get("gpu_demand")
    for row in r["loader"]:
        yield ("DataLoader images/s, %d worker(s)" % row["workers"], "%.1f" % row["images_per_s"],
               demand["images_per_s"] if demand else None, ">=")


def _eval(r: Dict[str, Any]) -> Iterator[Row]:
    size = "x".join(map(str, r["size"]))
    for entry in r["models"]:
        for mode, row in entry["modes"].items():
            memory = ", %.0f MiB" % row["peak_memory_mib"] if "peak_memory_mib" in row else ""
            yield ("eval %s %s %s %s (%.2fx bare fwd%s)" % (entry["model"], mode, size, r["device"], row["ratio"],
                                                            memory), "%.2f img/s" % row["images_per_s"], None, "")


def _step_formats(r: Dict[str, Any]) -> Iterator[Row]:
    for entry in r["models"]:
        for variant, row in entry["variants"].items():
            if variant == "fp32":
                continue
            figure = "step %s/fp32 %s %s x%d %s" % (variant, entry["model"], "x".join(map(str, r["size"])),
                                                    r["batch"], r["device"])
            yield (figure, row if isinstance(row, str) else "%.2f" % row["ratio_to_fp32"], None, "")


def _stack_ratio(r: Dict[str, Any]) -> Iterator[Row]:
    where = "%s->%s %s x%d CPU %d threads" % (r["teacher"], r["student"], "x".join(map(str, r["size"])), r["batch"],
                                             r["threads"])
    legacy = r["variants"]["legacy"]
    for name, v in r["variants"].items():
        if name == "legacy":
            continue
        label = name.replace("modern_", "modern ").replace("_", "+")
        native = "" if v["precision"] != "bf16" else (" (native bf16)" if r.get("cpu_bf16_native") else
                                                      " (bf16 emulated: no AVX512-BF16/AMX)")
        yield ("step time %s (torch %s, %s) / legacy (torch %s) %s%s" % (label, v["torch"], v["precision"],
                                                                       legacy["torch"], where, native),
               "%.3f" % v["ratio"], r.get("target", 1.0) if name == "modern" else None, "<=")
    for name, why in r.get("skipped", {}).items():
        yield ("step time %s / legacy %s" % (name.replace("modern_", "modern ").replace("_", "+"), where),
               "not run: " + why, None, "")


def _export_latency(r: Dict[str, Any]) -> Iterator[Row]:
    where = "%s batch %d %s %d threads" % ("x".join(map(str, r["size"])), r["batch"], r["device"].upper(), r["threads"])
    for entry in r["models"]:
        runtimes = dict(entry["runtimes"])
        floor = runtimes.pop("torch_eager")
        yield ("exported %s latency, torch eager (floor) %s" % (entry["model"], where), _ms(floor["median_s"]), None,
               "")
        for runtime, row in runtimes.items():
            yield ("exported %s latency %s / torch eager %s (%s, max |diff| %.1g)" % (
                entry["model"], runtime, where, _ms(row["median_s"]), row["max_abs_diff"]), "%.3f" % row["ratio"],
                r.get("target"), "<=")


_READERS: Dict[str, Callable[[Dict[str, Any]], Iterator[Row]]] = {
    "distill_step": _distill_step, "context_memory": _context_memory, "distill_quality": _distill_quality,
    "data_pipeline": _data_pipeline, "eval_throughput": _eval, "step_formats": _step_formats,
    "stack_ratio": _stack_ratio, "export_latency": _export_latency}


def _reader(name: str) -> Optional[Callable[[Dict[str, Any]], Iterator[Row]]]:
    for prefix in sorted(_READERS, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "_"):
            return _READERS[prefix]
    return None


def _status(value: str, target: Optional[float], how: str) -> str:
    if target is None:
        return ""
    number = float(value.split()[0])
    return "ok" if (number <= target if how == "<=" else number >= target) else "MISS"


def rows(out_dir: str) -> List[List[str]]:
    table = []
    for path in sorted(glob.glob(os.path.join(out_dir, "*.json"))):
        with open(path) as handle:
            result = json.load(handle)
        name = result.get("benchmark", os.path.splitext(os.path.basename(path))[0])
        reader = _reader(name)
        load = result.get("machine", {}).get("load_average") or []
        load_text = "%.1f" % load[0] if load else "?"
        if reader is None:
            table.append([name, "(no reader for this file)", "", "", "", load_text])
            continue
        for figure, value, target, how in reader(result):
            target_text = "" if target is None else "%s %.3g" % (how, target)
            table.append([name, figure, value, target_text, _status(value, target, how), load_text])
    return table


HEADER = ["benchmark", "figure", "value", "target", "", "load"]


def summary_line(table: List[List[str]]) -> str:
    misses = sum(1 for r in table if r[4] == "MISS")
    return ("%d figures, %d with a target, %d missed (load = 1-minute load average when written)"
            % (len(table), sum(1 for r in table if r[3]), misses))


def markdown(table: List[List[str]]) -> str:
    """The rows as a Markdown table (``|`` in cells escaped), then the summary line."""
    lines = ["| " + " | ".join(HEADER[:4] + ["status", "load"]) + " |", "|" + " --- |" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table]
    return "\n".join(lines + ["", summary_line(table)]) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="results")
    parser.add_argument("--markdown", metavar="FILE", help="also write the rows as a Markdown table to FILE")
    args = parser.parse_args(argv)
    table = rows(args.out_dir)
    if not table:
        print("no benchmark results in %s/" % args.out_dir)
        return 1
    widths = [max(len(r[i]) for r in table + [HEADER]) for i in range(len(HEADER))]
    for line in [HEADER] + table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    print(summary_line(table))
    if args.markdown:
        atomic_write_text(args.markdown, markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
