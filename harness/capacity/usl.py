"""The Universal Scalability Law fitted to a concurrency sweep (Gunther):

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

sigma is contention (the serial fraction), kappa coherency (crosstalk: throughput falls
past the peak), lambda the throughput of one user. The peak is at N* = sqrt((1-sigma)/kappa)
(no peak when kappa is 0). Fitted by scipy's curve_fit, bounded to the law's domain."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UslFit:
    sigma: float
    kappa: float
    lam: float
    n_star: float          # inf: no peak (kappa 0)
    x_max: float           # the law's throughput at N* (its limit when there is no peak)
    r2: float

    def at(self, n: float) -> float:
        return usl(np.asarray([n], dtype=float), self.sigma, self.kappa, self.lam)[0]

    def to_dict(self) -> dict[str, float | None]:
        return {"sigma": self.sigma, "kappa": self.kappa, "lambda": self.lam,
                "n_star": None if math.isinf(self.n_star) else self.n_star,
                "x_max": self.x_max, "r2": self.r2}


def usl(n: np.ndarray, sigma: float, kappa: float, lam: float) -> np.ndarray:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def fit_usl(users: Sequence[float], throughput: Sequence[float]) -> UslFit | None:
    """The law fitted to (users, throughput) points; None with fewer than three."""
    from scipy.optimize import curve_fit
    n = np.asarray(users, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if len(n) < 3 or not np.all(np.isfinite(x)):
        return None
    lam0 = float(max(x[n == n.min()].max() / n.min(), 1e-9))
    try:
        (sigma, kappa, lam), _ = curve_fit(usl, n, x, p0=(0.1, 1e-4, lam0),
                                           bounds=([0, 0, 0], [1, 1, np.inf]), maxfev=20000)
    except (RuntimeError, ValueError):
        return None
    residual = float(np.sum((x - usl(n, sigma, kappa, lam)) ** 2))
    total = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - residual / total if total > 0 else 1.0
    if kappa > 0:
        n_star = math.sqrt(max(1 - sigma, 0) / kappa)
        x_max = float(usl(np.asarray([n_star]), sigma, kappa, lam)[0])
    else:
        n_star = math.inf
        x_max = lam / sigma if sigma > 0 else math.inf
    return UslFit(float(sigma), float(kappa), float(lam), n_star, x_max, r2)
