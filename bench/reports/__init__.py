"""Reports of a run: RD plots (`plots`) and Markdown/HTML documents (`render`)."""

from bench.reports.render import write_reports

__all__ = ["write_reports"]
