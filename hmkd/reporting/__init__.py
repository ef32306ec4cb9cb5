"""Results across runs: the results table (`hmkd report` and the pipeline report), the report files, the charts."""
from hmkd.reporting.results import aggregate, markdown

__all__ = ["aggregate", "markdown"]
