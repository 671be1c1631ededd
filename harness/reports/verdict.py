"""Which model fits this workload, measured, and whether that agrees with the lesson's rule:
I/O-bound and slow -> asyncio; I/O-bound and fast -> threads; CPU-bound -> processes; and
a full TLS handshake per request -> threads (OpenSSL releases the GIL while it computes a
handshake, so threads overlap what an event loop does one at a time)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.core.names import AGGREGATED
from harness.core.registry import MODELS
from harness.scenario import Scenario

SLOW_IO_MS = 20.0   # a median at or above this is "slow I/O" for the rule of thumb
TIE_FRACTION = 0.05  # requests/s this close to the best is a tie: CPU per request decides
HEALTHY_ERROR_RATE = 0.01  # a model failing this share of its requests cannot win


@dataclass(frozen=True)
class Verdict:
    table: pd.DataFrame
    winner: str | None      # None: no model was healthy (every one failed >= 1%)
    workload: str
    expected: str
    agrees: bool | None     # None: untested (no model of the rule's family ran), or no winner
    reason: str


def families(scenario: Scenario) -> dict[str, str]:
    """Each model label of the scenario -> its family in the registry (what the rule names)."""
    return {m.label: MODELS[m.model].family for m in scenario.models}


def workload_kind(scenario: Scenario, summary: pd.DataFrame) -> str:
    secure = scenario.mock_tls or (scenario.target_url or "").startswith("https://")
    if secure and scenario.handshake == "per-request":
        return "tls-handshakes"
    if any(m.cpu_work > 0 for m in scenario.models) or any(
            r.path.startswith("/cpu/") for r in scenario.requests):
        return "cpu-bound"
    agg = summary[summary["name"] == AGGREGATED]
    median = agg["p50_ms"].min()
    return "io-slow" if median >= SLOW_IO_MS else "io-fast"


EXPECTED = {"cpu-bound": "processes", "io-slow": "asyncio", "io-fast": "threads",
            "tls-handshakes": "threads"}


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def decide(scenario: Scenario, summary: pd.DataFrame,
           saturated: set[str] | frozenset[str] = frozenset()) -> Verdict | None:
    """The winner: highest requests/s among models with under 1% errors. Models within
    TIE_FRACTION of the best requests/s are tied on throughput (common when the target, not
    the client, sets the pace) and the one spending the least client CPU per request wins
    among them; p99 breaks what is left."""
    agg = summary[summary["name"] == AGGREGATED].copy()
    if len(agg) < 2:
        return None
    if "protocol" not in agg:   # a summary.csv written before the column
        agg["protocol"] = "HTTP/1.1"
    table = agg[["model", "rps", "p50_ms", "p99_ms", "failures", "error_rate", "cpu_pct",
                 "rss_peak_mb", "protocol"]].reset_index(drop=True)
    healthy = table[table["error_rate"] < HEALTHY_ERROR_RATE]
    kind = workload_kind(scenario, summary)
    if not len(healthy):   # a winner among failing models would be a false verdict
        table["winner"] = False
        rates = ", ".join(f"{m} {100 * r:.1f}%" for m, r in zip(table["model"],
                                                             table["error_rate"], strict=True))
        return Verdict(table, None, kind, EXPECTED[kind], None,
                       f"no model was healthy (every one failed at least "
                       f"{HEALTHY_ERROR_RATE:.0%} of its requests: {rates})")
    # only a measurement of the target ranks: a model that measured its own client is
    # named below, never the winner (the busy machine crowned uvloop by 1,728%)
    pool = healthy[~healthy["model"].isin(saturated)]
    if not len(pool):
        table["winner"] = False
        return Verdict(table, None, kind, EXPECTED[kind], None,
                       "no model measured the target: every healthy one was client-bound "
                       f"({', '.join(sorted(saturated))}); rerun on an idle machine, or "
                       "with fewer users per load process")
    best, tied = _best(pool)
    winner = str(best["model"])
    known = families(scenario)

    def family(label: str) -> str:
        """By the scenario's labels; else by the registry name the label starts with (a
        summary read back from another run)."""
        if label in known:
            return known[label]
        names = [n for n in MODELS if label == n or label.startswith(f"{n}-")]
        return MODELS[max(names, key=len)].family if names else label

    expected = EXPECTED[kind]
    agrees: bool | None = family(winner) == expected
    ran = {family(m) for m in table["model"]}
    basis = (f"tied within {TIE_FRACTION:.0%} on requests/s with "
             f"{', '.join(tied)}, it spends the least client CPU per request; "
             if tied else "")
    if agrees:
        reason = (f"{basis}{winner} won {_article(kind)} workload, as the rule says "
                  f"({expected})")
    elif expected not in ran:
        agrees = None
        reason = f"no {expected} model ran, so the rule could not be tested"
    else:
        rival = pool[[family(m) == expected for m in pool["model"]]]
        rival = (rival if len(rival) else table[[family(m) == expected
                                                  for m in table["model"]]])
        rival = rival.sort_values("rps", ascending=False).iloc[0]
        reason = (f"{basis}{winner} won {_article(kind)} workload where the rule says "
                  f"{expected}: {_why(best, rival)}; measured beats argued")
    mine = [m for m in table["model"] if m in saturated]
    if mine:  # its numbers are its client's limit, not the target's or the model's
        reason += (f"; {', '.join(mine)} measured {'its' if len(mine) == 1 else 'their'} "
                   "own client (its load process was its bottleneck)")
    table["winner"] = table["model"] == winner
    return Verdict(table, winner, kind, expected, agrees, reason)


def cpu_us_per_request(cpu_pct: float, rps: float) -> float:
    """Client CPU per request in microseconds, from a summary row's cpu_pct (% of one
    core over the run) and rps: the fair figure when the target sets the pace."""
    return 1e4 * float(cpu_pct) / max(float(rps), 1e-9)


def _cpu_us(row: pd.Series) -> float:
    return cpu_us_per_request(row["cpu_pct"], row["rps"])


def _best(pool: pd.DataFrame) -> tuple[pd.Series, list[str]]:
    """The winning row, and the other models it was tied with on requests/s."""
    ranked = pool.sort_values(["rps", "p99_ms"], ascending=[False, True])
    top = ranked.iloc[0]
    close = ranked[ranked["rps"] >= (1.0 - TIE_FRACTION) * float(top["rps"])]
    # CPU decides only when every tied model measured it (a 0 means not measured)
    if len(close) < 2 or (close["cpu_pct"] <= 0).any():
        return top, []
    winner = (close.assign(cpu_us=close.apply(_cpu_us, axis=1))
              .sort_values(["cpu_us", "p99_ms"]).iloc[0])
    return winner, [str(m) for m in close["model"] if m != winner["model"]]


def _why(best: pd.Series, rival: pd.Series) -> str:
    """The measured reason the rule lost: throughput, tail and client CPU per request of the
    winner against the best model of the family the rule picks."""
    gain = 100.0 * (float(best["rps"]) / max(float(rival["rps"]), 1e-9) - 1.0)
    return (f"{abs(gain):.0f}% {'more' if gain >= 0 else 'fewer'} requests/s than "
            f"{rival['model']}, p99 "
            f"{best['p99_ms']:.2f} vs {rival['p99_ms']:.2f} ms, client CPU "
            f"{_cpu_us(best):.0f} vs {_cpu_us(rival):.0f} us per request")


def format_verdict(v: Verdict) -> str:
    lines = ["model                     rps     p50 ms    p99 ms  errors   cpu%   rss MB"
             "  us/req  protocol"]
    for row in v.table.itertuples():
        mark = " *" if row.winner else ""
        # client CPU per request: what each model (and HTTP/2) costs the generator
        lines.append(f"{row.model:<20}{row.rps:>10.0f}{row.p50_ms:>11.2f}{row.p99_ms:>10.2f}"
                     f"{row.failures:>8d}{row.cpu_pct:>7.0f}{row.rss_peak_mb:>9.1f}"
                     f"{cpu_us_per_request(row.cpu_pct, row.rps):>8.0f}  {row.protocol}{mark}")
    if v.winner is None:
        lines.append(f"verdict: no winner: {v.reason}")
        return "\n".join(lines)
    said = "untested" if v.agrees is None else "agrees" if v.agrees else "disagrees"
    lines.append(f"verdict: {v.winner} for this {v.workload} workload; lesson's rule: "
                 f"{v.expected} -> {said} ({v.reason})")
    return "\n".join(lines)
