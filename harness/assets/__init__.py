"""Files the dashboard serves and report.html inlines: our chart code and stylesheet, and
uPlot (vendored from npm `uplot` 1.6.32, MIT: uPlot.LICENSE beside it). No CDN, no network
request from a page."""

from __future__ import annotations

from importlib import resources


def read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
