"""Rows of some seconds of one model replaced in a per-second CSV, streamed: what a late
cell (a worker back from a partition) changes in timeseries.csv, errors.csv,
statuses.csv and histograms/ once the model has ended. The file is read and written a
line at a time (an hour of a wide run is hundreds of MB), the new rows go where their
second's rows were -- or, for a second that had none, before the model's next one."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any


def replace_seconds(path: Path, columns: list[str], model: str | None,
                    new: dict[int, list[dict[str, Any]]]) -> None:
    """`new`: second -> the rows that replace all of that second's rows of `model` (None:
    the file holds one model's rows, as histograms/<model>.csv does)."""
    pending = sorted(new)
    tmp = path.with_name(path.name + ".rewrite")
    with open(path, newline="") as src, open(tmp, "w", newline="") as dst:
        reader = csv.reader(src)
        writer = csv.writer(dst)
        dict_writer = csv.DictWriter(dst, columns, extrasaction="ignore")
        header = next(reader, None)
        if header is None:
            dict_writer.writeheader()
            header = columns
        else:
            writer.writerow(header)
        at_model = header.index("model") if "model" in header else None
        at_second = header.index("second")
        for row in reader:
            ours = model is None or (at_model is not None and row[at_model] == model)
            if not ours:
                writer.writerow(row)
                continue
            second = int(row[at_second])
            while pending and pending[0] <= second:   # due before (or at) this row
                dict_writer.writerows(new[pending.pop(0)])
            if second not in new:
                writer.writerow(row)
        for second in pending:   # the model's rows are the last in the file
            dict_writer.writerows(new[second])
    os.replace(tmp, path)
