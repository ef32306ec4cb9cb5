"""The benchmark table: every figure in a results folder's JSON files against its target, one line each.

Usage: python -m hmkd.benchmarks.table [results/]

Each benchmark writes its own JSON; this reads them all back so `make bench` and `make bench-gpu` end with one view
of where the project stands (ok / MISS against a target; plain figures where the issue sets none).
"""
import glob
import json
import os
import sys
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

Row = Tuple[str, str, Optional[float], str]  # figure, value text, target (None = no target), comparison ("<=", ">=")


def _ms(seconds: float) -> str:
    return "%.1f ms" % (1e3 * seconds)


def _distill_step(r: Dict[str, Any]) -> Iterator[Row]:
    where = "%s->%s %s x%d %s%s" % (r["teacher"], r["student"], "x".join(map(str, r["size"])), r["batch"],
                                    r["device"], " amp" if r.get("amp") else "")
    yield ("step ratio " + where, "%.3f" % r["ratio"], r.get("target", 1.10), "<=")
    if "ratio_same_teacher_work" in r:
        yield ("step ratio against the teacher work the step runs " + where, "%.3f" % r["ratio_same_teacher_work"],
               None, "")
    if "mac_ratio" in r:
        yield ("  the same in multiply-accumulates (the method's arithmetic) " + where, "%.3f" % r["mac_ratio"],
               None, "")
    yield ("images/s " + where, "%.2f" % r["images_per_s"], None, "")
    if "peak_memory_mib" in r:
        yield ("peak memory " + where, "%.0f MiB" % r["peak_memory_mib"], None, "")


def _context_memory(r: Dict[str, Any]) -> Iterator[Row]:
    yield ("HFA context peak chunked/direct %dx%dx%d %s (%.0f / %.0f MiB)"
           % (r["hw"][0], r["hw"][1], r["channels"], r["device"], r["chunked_peak_mib"], r["direct_peak_mib"]),
           "%.3f" % r["ratio"], r.get("target", 0.125), "<=")
    hfa = r.get("scopes", {}).get("hfa")
    if hfa:
        yield ("whole HFA term peak chunked/direct context (%.0f / %.0f MiB)"
               % (hfa["chunked"]["median_mib"], hfa["direct"]["median_mib"]), "%.3f" % hfa["ratio"], None, "")


def _distill_quality(r: Dict[str, Any]) -> Iterator[Row]:
    for label, row in r["stages"].items():
        std = row.get("mIoU_std")
        yield ("mIoU %s (%d seed(s), synthetic)" % (label, row["seeds"]),
               "%.2f%s" % (100 * row["mIoU_mean"], "" if std is None else " +- %.2f" % (100 * std)), None, "")


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


_READERS: Dict[str, Callable[[Dict[str, Any]], Iterator[Row]]] = {
    "distill_step": _distill_step, "context_memory": _context_memory, "distill_quality": _distill_quality,
    "data_pipeline": _data_pipeline, "eval_throughput": _eval, "step_formats": _step_formats}


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


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = args[0] if args else "results"
    table = rows(out_dir)
    if not table:
        print("no benchmark results in %s/" % out_dir)
        return 1
    header = ["benchmark", "figure", "value", "target", "", "load"]
    widths = [max(len(r[i]) for r in table + [header]) for i in range(len(header))]
    for line in [header] + table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    misses = sum(1 for r in table if r[4] == "MISS")
    print("%d figures, %d with a target, %d missed (load = 1-minute load average when written)"
          % (len(table), sum(1 for r in table if r[3]), misses))
    return 0


if __name__ == "__main__":
    sys.exit(main())
