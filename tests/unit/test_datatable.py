"""core.datatable against the csv module: the numpy split of an unquoted file and the csv
path of a quoted one read every table as csv.reader does (blank lines skipped, CRLF,
a BOM), and a ragged row is refused naming its line."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.datatable import CsvError, DataRows, split_header

FIELD = st.text(st.characters(codec="utf-8", exclude_characters='\r\n\x00'), max_size=6)


def reference(data: bytes) -> tuple[list[str], list[tuple[str, ...]]]:
    rows = [tuple(r) for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
            if r]
    return list(rows[0]), rows[1:]


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4).flatmap(lambda w: st.lists(st.lists(FIELD, min_size=w, max_size=w),
                                                     min_size=2, max_size=12)),
       st.sampled_from(["\n", "\r\n"]), st.booleans(), st.booleans())
def test_every_table_reads_as_the_csv_module_reads_it(table, newline, blank, bom):
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows(table)
    text = out.getvalue()
    if blank:
        text = text.replace(newline, newline + newline, 1)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode()
    header, offset = split_header(data)
    rows = DataRows(data, len(header), offset)
    want_header, want_rows = reference(data)
    assert header == want_header
    assert [rows[i] for i in range(len(rows))] == want_rows


@pytest.mark.parametrize("data, line", [(b"a,b\n1,2\n3\n", 3), (b"a,b\n\n1,2,3\n", 3),
                                        (b'a,b\n"x\ny",1\n2\n', 4)])
def test_a_ragged_row_names_its_line(data, line):
    header, offset = split_header(data)
    with pytest.raises(CsvError, match=f"line {line}: expected 2 fields"):
        DataRows(data, len(header), offset)
