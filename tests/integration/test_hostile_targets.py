"""A hostile target never takes the load generator down (issue 23): every model, Locust's
peers included, against servers written to hurt a client -- an endless body, a 1 TiB
Content-Length, a gzip bomb sent though we asked for identity, a body cut by a reset or a
close. Each run ends by itself, in bounded memory, with what it measured kept; the same
fault is the same error kind in every one of our models (the README's fault -> kind table).

Locust's clients buffer a whole body and keep no overall deadline: the memory watchdog
stops them at [run].max_memory with one line naming the cause, and the other models run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import load_meta, made_once, run_harness
from tests.integration.test_real_servers import LOCUST_MODELS, OUR_MODELS
from tests.rawserver import BOMB_MIB, FAULTS, RawServer

MAX_MEMORY_MIB = 300
PER_MODEL = 2
# what a fault is in errors.csv, the same in every one of our models (README)
KIND = {"endless": "timeout", "huge_length": "timeout", "reset_mid_body": "body_length_mismatch",
        "close_mid_body": "body_length_mismatch", "close_before_answer": "reset",
        "short_length": "malformed_response"}


def _run(tmp: Path, fault: str, models: list[tuple[str, str]]) -> tuple[object, Path, int]:
    server = RawServer(fault=fault)
    path = tmp / f"{fault}.toml"
    path.write_text(f'[run]\nrequests = {PER_MODEL}\ntimeout = "1s"\n'
                    f'max_memory = "{MAX_MEMORY_MIB}MiB"\n[load]\nconcurrency = 2\n'
                    '[[requests]]\nname = "page"\npath = "/"\n'
                    + "".join(f"[[models]]\n{m}\n" for m, _ in models))
    try:
        proc = run_harness("run", str(path), "--target", server.url, "--out", str(tmp / fault),
                           "--quiet", timeout=400)
    finally:
        server.stop()
    out = proc.stdout.strip().splitlines()
    return proc, Path(out[-1]) if out else tmp, [r.at for r in server.requests]


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory) -> dict[str, tuple]:
    """Every fault through every model, three runs side by side (each is mostly waiting
    for its timeouts)."""
    def make() -> dict[str, tuple]:
        tmp = tmp_path_factory.mktemp("hostile")
        with ThreadPoolExecutor(3) as pool:
            futures = {f: pool.submit(_run, tmp, f, OUR_MODELS + LOCUST_MODELS)
                       for f in FAULTS}
            return {f: fut.result() for f, fut in futures.items()}
    return made_once("hostile_runs", make)


@pytest.mark.parametrize("fault", FAULTS)
def test_every_model_survives_a_hostile_target(hostile_runs, fault: str):
    proc, run_dir, seen_at = hostile_runs[fault]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), proc.stderr
    summary = pd.read_csv(run_dir / "summary.csv")
    agg = summary[summary["name"] == "Aggregated"].set_index("model")
    meta = load_meta(str(run_dir))
    errors = pd.read_csv(run_dir / "errors.csv")
    stopped = [line for line in proc.stderr.splitlines() if "memory ceiling" in line]
    for _, label in OUR_MODELS + LOCUST_MODELS:
        ours = label not in dict(LOCUST_MODELS).values()
        if not ours and fault == "gzip_bomb" and label not in agg.index and \
                "lost workers: local-0 (during locust" in proc.stderr:
            # Locust inflates the bomb in the worker's own process: on a busy machine that
            # held the worker silent past lost_after, it was lost, the run ended partial
            # (said in one line, exit 1) and a later Locust model never ran. A known defect
            # of the Locust peer (noted), not of our models, which are all checked here.
            continue
        assert label in agg.index, (label, proc.returncode, proc.stderr[-4000:])
        if ours:   # bounded by reading, not by the watchdog: every request ended
            assert agg.loc[label, "requests"] == PER_MODEL, (label, agg.loc[label])
            assert not any(label in line for line in stopped), (label, stopped)
        # bounded memory: under the ceiling, or stopped at it (one line naming it)
        assert agg.loc[label, "rss_peak_mb"] < 2 * MAX_MEMORY_MIB + 100, \
            (label, agg.loc[label, "rss_peak_mb"])
        if agg.loc[label, "rss_peak_mb"] > MAX_MEMORY_MIB:
            assert any(label in line for line in stopped), (label, proc.stderr)
        mine = errors[errors["model"] == label]
        if fault == "gzip_bomb":
            # we send Accept-Encoding: identity and never inflate: the bomb is 0.5 MiB of
            # bytes, read and dropped
            if ours:
                assert agg.loc[label, "failures"] == 0, (label, mine)
                assert agg.loc[label, "bytes_in"] < PER_MODEL * BOMB_MIB * 2**20 / 100
        elif ours:
            assert agg.loc[label, "failures"] == PER_MODEL, (label, agg.loc[label])
            assert set(mine["kind"]) == {KIND[fault]}, (label, mine)
    # models run one after another: the server's requests read before the first Locust
    # model started are ours, and reconcile exactly in every fault (none of our models is
    # ever stopped by the watchdog)
    ran = [label for _, label in LOCUST_MODELS if label in meta["models"]]
    first_locust = min(meta["models"][label]["started"] for label in ran)
    ours = sum(1 for at in seen_at if at < first_locust)
    theirs = len(seen_at) - ours
    sent = {label: meta["models"][label]["requests_sent"] for _, label in OUR_MODELS}
    assert sum(sent.values()) == ours, (sent, ours)
    locust_sent = sum(meta["models"][label]["requests_sent"] for label in ran)
    # Locust's clients resend on a connection closed under them without telling (the
    # README's note on Locust), and a Locust user stopped by the watchdog may have counted
    # a request whose bytes had not left: never fewer at the server than it reported, and
    # where nothing closed or stopped it, exactly as many
    if fault == "close_before_answer" or stopped or len(ran) < len(LOCUST_MODELS):
        assert locust_sent <= theirs + 2 * len(stopped), (locust_sent, theirs, stopped)
    else:
        assert locust_sent == theirs, (locust_sent, theirs)


def test_captured_bodies_are_capped(tmp_path):
    """A flow step that extracts from the body keeps at most [run].max_body of it: beyond,
    the step is `body_too_large` in every model (and the flow aborts), never held whole."""
    server = RawServer(body=b"y" * 5000)
    models = OUR_MODELS
    path = tmp_path / "cap.toml"
    path.write_text('[run]\nrequests = 4\nmax_body = "4KiB"\n[load]\nconcurrency = 1\n'
                    '[[flows]]\nname = "f"\n[[flows.steps]]\nname = "get"\npath = "/"\n'
                    'extract = { v = { regex = "(y+)" } }\n'
                    '[[flows.steps]]\nname = "next"\npath = "/next?v={{v}}"\n'
                    + "".join(f"[[models]]\n{m}\n" for m, _ in models))
    try:
        proc = run_harness("run", str(path), "--target", server.url, "--out", str(tmp_path),
                           "--quiet", timeout=300)
    finally:
        server.stop()
    assert "Traceback" not in proc.stderr, proc.stderr
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    errors = pd.read_csv(run_dir / "errors.csv")
    for _, label in models:
        mine = errors[(errors["model"] == label) & (errors["name"] == "get")]
        assert set(mine["kind"]) == {"body_too_large"}, (label, errors[errors["model"] == label])
    assert {s.target for s in server.requests} == {"/"}   # no flow went on with a cut body


def _flow_run(tmp_path: Path, server: RawServer, tag: str, flows: dict[str, str]) -> Path:
    """Every one of our models through `flows` (name -> its first step's extra lines)."""
    path = tmp_path / f"{tag}.toml"
    path.write_text(f'[run]\nrequests = {3 * len(flows)}\n[load]\nconcurrency = 1\n'
                    + "".join(f'[[flows]]\nname = "{name}"\n[[flows.steps]]\n'
                              f'name = "{name}-get"\npath = "/"\n{extra}'
                              'extract = { t = { json = "$.token" } }\n'
                              f'[[flows.steps]]\nname = "{name}-next"\npath = "/next/{{{{t}}}}"\n'
                              for name, extra in flows.items())
                    + "".join(f"[[models]]\n{m}\n" for m, _ in OUR_MODELS))
    proc = run_harness("run", str(path), "--target", server.url, "--out",
                       str(tmp_path / tag), "--quiet", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


ASKS = 'headers = { Accept-Encoding = "gzip" }\n'


def test_a_compressed_answer_is_inflated_only_when_asked_and_bounded(tmp_path):
    """A step that sends Accept-Encoding: gzip extracts from the inflated JSON in every
    model; one that did not ask reads the bytes as sent (and finds no JSON); a gzip bomb
    to a step that asked is body_too_large at max_body, never inflated whole."""
    import gzip
    token = gzip.compress(b'{"token": "abc123"}')
    server = RawServer(body=token, extra_headers="Content-Encoding: gzip\r\n")
    try:
        run_dir = _flow_run(tmp_path, server, "gz", {"asked": ASKS, "unasked": ""})
    finally:
        server.stop()
    assert {s.target for s in server.requests} == {"/", "/next/abc123"}
    errors = pd.read_csv(run_dir / "errors.csv")
    summary = pd.read_csv(run_dir / "summary.csv").set_index(["model", "name"])
    for _, label in OUR_MODELS:
        mine = errors[errors["model"] == label]
        assert set(mine[mine["name"] == "unasked-get"]["kind"]) == {"extract_failed"}, label
        assert mine[mine["name"].str.startswith("asked")].empty, (label, mine)
        assert summary.loc[(label, "asked-next"), "requests"] > 0, label

    bomb = RawServer(fault="gzip_bomb")
    try:
        run_dir = _flow_run(tmp_path, bomb, "bomb", {"asked": ASKS})
    finally:
        bomb.stop()
    errors = pd.read_csv(run_dir / "errors.csv")
    for _, label in OUR_MODELS:
        mine = errors[(errors["model"] == label) & (errors["name"] == "asked-get")]
        assert set(mine["kind"]) == {"body_too_large"}, (label, mine)
    summary = pd.read_csv(run_dir / "summary.csv")
    assert (summary["rss_peak_mb"] < MAX_MEMORY_MIB).all(), summary["rss_peak_mb"]
