"""hmkd report RUN_DIR [RUN_DIR ...] [--json]: compare finished runs from their eval.json files."""
import json

HELP = "print a results table for run directories"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")


def run(args) -> int:
    from hmkd.reporting import collect_runs, markdown_table

    rows = collect_runs(args.run_dirs)
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "confusion_matrix"} for r in rows], indent=2))
    else:
        print(markdown_table(rows))
    return 0
