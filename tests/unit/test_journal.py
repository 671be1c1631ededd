"""The journal reader on a truncated or damaged file: what came before is intact."""

from __future__ import annotations

from harness.control.journal import FILE, Journal, read_journal


def write(tmp_path, n: int) -> bytes:
    journal = Journal(tmp_path)
    for i in range(n):
        journal.append("stats", model=0, worker=i % 3, cells=[[i, "home", {"n": i}]])
    journal.close()
    return (tmp_path / "journal" / FILE).read_bytes()


def test_round_trip(tmp_path):
    write(tmp_path, 50)
    reading = read_journal(tmp_path)
    assert [r["cells"][0][0] for r in reading.records] == list(range(50))
    assert reading.skipped_bytes == 0 and reading.records[0]["k"] == "stats"


def test_torn_last_record_is_skipped_at_every_cut(tmp_path):
    data = write(tmp_path, 5)
    path = tmp_path / "journal" / FILE
    whole = read_journal(tmp_path).records
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        reading = read_journal(tmp_path)
        assert reading.records == whole[:len(reading.records)]
        frame = len(data) // 5  # five records of the same size
        assert len(reading.records) == cut // frame
        assert reading.skipped_bytes == cut - len(reading.records) * frame


def test_damage_stops_reading_there(tmp_path):
    data = bytearray(write(tmp_path, 5))
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "journal" / FILE).write_bytes(bytes(data))
    reading = read_journal(tmp_path)
    assert 1 <= len(reading.records) < 5 and reading.skipped_bytes > 0
