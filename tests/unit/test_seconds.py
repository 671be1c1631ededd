"""reports/seconds.py: some seconds of one model replaced in a per-second file, streamed;
other models' rows and other seconds untouched, a second that had no rows put in order."""

from __future__ import annotations

import csv

from harness.reports.seconds import replace_seconds

COLUMNS = ["model", "name", "second", "requests"]


def test_replaces_only_the_given_seconds_of_the_model(tmp_path):
    path = tmp_path / "timeseries.csv"
    rows = [["a", "x", "0", "5"], ["b", "x", "0", "1"], ["b", "x", "1", "1"],
            ["b", "y", "1", "2"], ["b", "x", "3", "1"]]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, *rows])
    replace_seconds(path, COLUMNS, "b", {
        1: [{"model": "b", "name": "x", "second": 1, "requests": 9}],
        2: [{"model": "b", "name": "x", "second": 2, "requests": 7}],
        5: [{"model": "b", "name": "x", "second": 5, "requests": 3}]})
    with open(path, newline="") as f:
        got = list(csv.reader(f))
    assert got == [COLUMNS, ["a", "x", "0", "5"], ["b", "x", "0", "1"], ["b", "x", "1", "9"],
                   ["b", "x", "2", "7"], ["b", "x", "3", "1"], ["b", "x", "5", "3"]]
    assert not (tmp_path / "timeseries.csv.rewrite").exists()


def test_a_one_model_file(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,second,hist\nx,0,AA\nx,1,BB\n")
    replace_seconds(path, ["name", "second", "hist"], None,
                    {0: [{"name": "x", "second": 0, "hist": "CC"}]})
    assert path.read_text().splitlines() == ["name,second,hist", "x,0,CC", "x,1,BB"]
