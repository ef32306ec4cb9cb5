"""Results across run directories: tables (Markdown / text) from each run's eval.json."""
from hmkd.reporting.table import collect_runs, markdown_table

__all__ = ["collect_runs", "markdown_table"]
