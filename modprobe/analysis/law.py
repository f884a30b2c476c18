"""The modality-following law: P(text-following) against the uncertainty axis.

SCIENCE.md section 1, "The law", "Balance point" and "Robustness split". The law is
estimated on decided conflict items (text- or vision-following; 'other' items say
nothing about which modality wins) as

* a binned text-following rate with Wilson intervals (for display),
* an isotonic (monotone non-increasing) regression, and
* a logistic model ``P(text | x) = sigmoid(a + b x)`` fitted by maximum likelihood,

with a nonparametric bootstrap giving confidence bands, an interval for the slope ``b``
(the monotonicity test) and an interval for the balance point ``x* = -a / b`` where the
fitted probability crosses 0.5. The bootstrap resamples items with replacement, or, given
``clusters``, whole clusters of items whose outcomes are correlated (items generated from
one scene, one image or one template): resampling their items one by one treats them as
independent and gives intervals that are too narrow. All bootstrap logistic fits run at
once: a batched Newton (IRLS) solver on ``replicates items`` arrays, with each item
weighted by how many times the replicate drew it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import isotonic_regression
from scipy.special import expit

from modprobe.analysis._arrays import to_numpy
from modprobe.stats import cluster_codes, cluster_resample_weights, wilson_intervals

BinStrategy = Literal["quantile", "uniform"]


# --------------------------------------------------------------------------- logistic


@dataclass(frozen=True)
class LogisticFit:
    """Maximum-likelihood fit of ``P(text | x) = sigmoid(intercept + slope * x)``.

    Attributes:
        intercept: a.
        slope: b (negative when the law holds: more text uncertainty, less text
            following).
        converged: Whether Newton's method met its tolerance at a finite maximum
            (False under complete separation, where the MLE does not exist and the
            slope grows without bound; the crossing point -a/b stays meaningful).
        n_iter: Newton iterations used.
    """

    intercept: float
    slope: float
    converged: bool
    n_iter: int

    def predict(self, x: Any) -> np.ndarray:
        """Fitted ``P(text | x)`` at ``x`` (any shape)."""
        return expit(self.intercept + self.slope * to_numpy(x))


def _log_likelihood(
    coef: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """``replicates`` (weighted) Bernoulli log-likelihoods of ``coef`` (``replicates 2``)."""
    eta = coef[:, :1] + coef[:, 1:] * x
    # log(1 + e^eta) = max(eta, 0) + log1p(e^-|eta|): stable and cheaper than logaddexp.
    softplus = np.maximum(eta, 0.0) + np.log1p(np.exp(-np.abs(eta)))
    terms = y * eta - softplus
    return np.sum(terms if weights is None else weights * terms, axis=1)


def fit_logistic_batch(
    x: np.ndarray,
    y: np.ndarray,
    init: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-8,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Fit many one-feature logistic regressions at once by damped Newton (IRLS).

    Each replicate ``r`` maximises
    ``l(a, b) = sum_i w_ri (y_ri eta_ri - log(1 + e^eta_ri))`` with ``eta = a + b x``
    (``w = 1`` without ``weights``; a bootstrap replicate weights each item by how many
    times it was drawn, 0 for items left out). The Newton step solves the 2x2 system
    ``H d = g`` with ``g = sum (y - p) [1, x]`` and ``H = sum p (1 - p) [1, x][1, x]^T``
    in closed form; a step that lowers the likelihood is halved (the log-likelihood is
    concave, so this always terminates). Only unconverged replicates are updated.
    Used by `fit_law` for the bootstrap (SCIENCE.md section 1, "The law").

    Args:
        x: ``replicates items`` covariate.
        y: ``replicates items`` outcomes in {0, 1}.
        init: ``replicates 2`` starting ``(a, b)``; zeros by default.
        max_iter: Newton iteration cap.
        tol: Convergence threshold on the largest coefficient change.
        weights: ``replicates items`` non-negative item weights (x and y may then be
            ``1 items`` and broadcast).

    Returns:
        ``(coef, converged, n_iter)``: ``replicates 2`` estimates, ``replicates`` bools,
        and the number of iterations run.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    if weights is not None:
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        shape = np.broadcast_shapes(x.shape, y.shape, weights.shape)
        x, y, weights = (np.broadcast_to(a, shape) for a in (x, y, weights))
    n_rep = x.shape[0]
    coef = np.zeros((n_rep, 2)) if init is None else np.array(init, dtype=np.float64)
    converged = np.zeros(n_rep, dtype=bool)
    active = np.arange(n_rep)
    ll = _log_likelihood(coef, x, y, weights)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if active.size == n_rep:  # avoid copying the data while nothing has converged
            xa, ya, ca, ll_old, wa = x, y, coef.copy(), ll, weights
        else:
            xa, ya, ca, ll_old = x[active], y[active], coef[active], ll[active]
            wa = None if weights is None else weights[active]
        p = expit(ca[:, :1] + ca[:, 1:] * xa)
        w = p * (1.0 - p)
        resid = ya - p
        if wa is not None:
            w = w * wa
            resid = resid * wa
        g0 = resid.sum(axis=1)
        g1 = (resid * xa).sum(axis=1)
        h00 = w.sum(axis=1)
        h01 = (w * xa).sum(axis=1)
        h11 = (w * xa * xa).sum(axis=1)
        # A relative ridge keeps the 2x2 solve defined when all p are ~0 or ~1
        # (separated replicates); it only shortens such steps.
        ridge = 1e-10 * (h00 + h11) + 1e-300
        h00 = h00 + ridge
        h11 = h11 + ridge
        det = h00 * h11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            step = np.stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det], axis=1)
        step = np.where(np.isfinite(step), step, 0.0)
        scale = np.ones(active.size)
        for _ in range(30):
            ll_new = _log_likelihood(ca + scale[:, None] * step, xa, ya, wa)
            worse = ll_new < ll_old - 1e-12 * np.abs(ll_old)
            if not worse.any():
                break
            scale = np.where(worse, scale / 2.0, scale)
        step = scale[:, None] * step
        coef[active] = ca + step
        ll[active] = ll_new
        done = np.max(np.abs(step), axis=1) < tol * (1.0 + np.max(np.abs(ca), axis=1))
        converged[active[done]] = True
        active = active[~done]
        if active.size == 0:
            break
    # Under (quasi-)complete separation the MLE is at infinity: Newton only stops because
    # the fitted probabilities round to 0 and 1, so such fits are never "converged".
    converged &= ~_separated(x, y, None if weights is None else weights > 0)
    return coef, converged, n_iter


def _separated(x: np.ndarray, y: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """``replicates`` bools: the outcomes are (quasi-)completely separated by x.

    In one dimension that means the x ranges of the two outcomes do not overlap
    (touching at one point counts: quasi-complete separation). Replicates with a single
    outcome are not flagged here (their flat fit is handled by the caller). ``present``
    (``replicates items`` bools) leaves out items of weight 0.
    """
    pos = y > 0.5
    neg = ~pos
    if present is not None:
        pos, neg = pos & present, neg & present
    has_both = pos.any(axis=1) & neg.any(axis=1)
    max1 = np.where(pos, x, -np.inf).max(axis=1)
    min1 = np.where(pos, x, np.inf).min(axis=1)
    max0 = np.where(neg, x, -np.inf).max(axis=1)
    min0 = np.where(neg, x, np.inf).min(axis=1)
    return has_both & ((max1 <= min0) | (max0 <= min1))


def fit_logistic(x: Any, followed_text: Any, max_iter: int = 100) -> LogisticFit:
    """Maximum-likelihood logistic fit ``P(text | x) = sigmoid(a + b x)``.

    SCIENCE.md section 1, "The law" (ours: the parametric fit). No statsmodels: the
    batched Newton solver `fit_logistic_batch` with one replicate.

    Args:
        x: ``items`` uncertainty-axis values (finite).
        followed_text: ``items`` bools, True for text-following, False for vision.
        max_iter: Newton iteration cap.

    Returns:
        `LogisticFit`.
    """
    xv = to_numpy(x).reshape(1, -1)
    yv = to_numpy(followed_text, dtype=bool).astype(np.float64).reshape(1, -1)
    coef, converged, n_iter = fit_logistic_batch(xv, yv, max_iter=max_iter)
    return LogisticFit(float(coef[0, 0]), float(coef[0, 1]), bool(converged[0]), n_iter)


# --------------------------------------------------------------------------- isotonic


@dataclass(frozen=True)
class IsotonicFit:
    """Monotone non-increasing least-squares fit of P(text) on x.

    Attributes:
        x: ``points`` sorted unique x values.
        y: ``points`` fitted P(text), non-increasing in x.
    """

    x: np.ndarray
    y: np.ndarray

    def predict(self, x: Any) -> np.ndarray:
        """Fitted values at ``x``, linear between points and constant outside."""
        return np.interp(to_numpy(x), self.x, self.y)


def fit_isotonic(x: Any, followed_text: Any, weights: Any | None = None) -> IsotonicFit:
    """Isotonic (non-increasing) regression of text-following on x.

    Minimises ``sum_i w_i (y_i - f(x_i))^2`` over non-increasing ``f`` (SCIENCE.md
    section 1, "The law"; ours: the nonparametric fit), using
    ``scipy.optimize.isotonic_regression`` on the x-sorted data with tied x values
    pooled (their mean outcome, weighted by their count).

    Args:
        x: ``items`` finite axis values.
        followed_text: ``items`` bools (text = True).
        weights: Optional ``items`` positive weights (e.g. bootstrap counts).

    Returns:
        `IsotonicFit`.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).astype(np.float64).reshape(-1)
    wv = np.ones_like(xv) if weights is None else to_numpy(weights).reshape(-1)
    keep = wv > 0
    xv, yv, wv = xv[keep], yv[keep], wv[keep]
    ux, inverse = np.unique(xv, return_inverse=True)
    w_sum = np.bincount(inverse, weights=wv, minlength=ux.size)
    y_mean = np.bincount(inverse, weights=wv * yv, minlength=ux.size) / w_sum
    fitted = isotonic_regression(y_mean, weights=w_sum, increasing=False).x
    return IsotonicFit(x=ux, y=np.asarray(fitted))


# --------------------------------------------------------------------------- bins


def binned_following_rate(
    x: Any,
    followed_text: Any,
    bins: int | Sequence[float] = 10,
    strategy: BinStrategy = "quantile",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Text-following rate per bin of the uncertainty axis, with Wilson intervals.

    ``rate_k = #text in bin k / #decided in bin k`` (SCIENCE.md section 1, "The law":
    the paper's plotted quantity). Quantile bins (the default) hold equal numbers of
    items, which matters when saturation piles items up at dH_rel = +-2; tied quantile
    edges are merged, so fewer bins may come back, and when ties leave fewer than half
    the requested bins (a point mass, e.g. floored saturated items all at 0) equal-width
    bins are used instead. Empty bins are dropped.

    Args:
        x: ``items`` finite axis values.
        followed_text: ``items`` bools.
        bins: Number of bins, or explicit increasing edges.
        strategy: ``"quantile"`` or ``"uniform"`` (equal width over the observed range),
            used when ``bins`` is an int.
        confidence: Wilson interval level.

    Returns:
        One row per non-empty bin: ``x_low, x_high, x_mean, n, n_text, rate, ci_low,
        ci_high``.
    """
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).reshape(-1)
    if isinstance(bins, (int, np.integer)):
        if strategy == "quantile":
            edges = np.unique(np.quantile(xv, np.linspace(0, 1, int(bins) + 1)))
            if edges.size - 1 < int(bins) / 2:
                # A point mass (e.g. floored saturated items all at 0) swallows most
                # quantiles; equal-width bins then still show the shape of the rest.
                edges = np.linspace(xv.min(), xv.max(), int(bins) + 1)
        elif strategy == "uniform":
            edges = np.linspace(xv.min(), xv.max(), int(bins) + 1)
        else:
            raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    else:
        edges = np.asarray(bins, dtype=np.float64)
    if edges.size < 2:
        edges = np.array([xv.min(), xv.max()])
    # Interior edges only: the first and last bins are open so every item lands somewhere.
    index = np.searchsorted(edges[1:-1], xv, side="right")
    n_bins = edges.size - 1
    n = np.bincount(index, minlength=n_bins)
    k = np.bincount(index, weights=yv.astype(np.float64), minlength=n_bins)
    x_sum = np.bincount(index, weights=xv, minlength=n_bins)
    low, high = wilson_intervals(k, n, confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        frame = pd.DataFrame(
            {
                "x_low": edges[:-1],
                "x_high": edges[1:],
                "x_mean": x_sum / n,
                "n": n.astype(int),
                "n_text": k.astype(int),
                "rate": k / n,
                "ci_low": low,
                "ci_high": high,
            }
        )
    return frame[frame["n"] > 0].reset_index(drop=True)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class BalancePoint:
    """Where the fitted P(text-following) crosses 0.5 (SCIENCE.md section 1).

    Attributes:
        value: ``x* = -a / b`` when it lies inside the observed range, else NaN.
        ci_low: Lower percentile-bootstrap bound of x* (NaN when not crossing).
        ci_high: Upper bound.
        crosses: Whether the fitted curve crosses 0.5 inside the observed range.
        direction: When it does not cross: ``"text"`` if the fitted curve stays above
            0.5 (the items follow the text over the whole range), ``"vision"`` if it
            stays below; None when it crosses.
        reason: Human-readable explanation when it does not cross.
        extrapolated: ``-a / b`` wherever it lies (+-inf for a flat fit).
        x_range: ``(min, max)`` of the observed axis values.
        share_crossing: Share of bootstrap replicates whose crossing is in range.
        confidence: Interval level.
        n_bootstrap: Bootstrap replicates.
    """

    value: float
    ci_low: float
    ci_high: float
    crosses: bool
    direction: str | None
    reason: str | None
    extrapolated: float
    x_range: tuple[float, float]
    share_crossing: float
    confidence: float
    n_bootstrap: int

    def summary(self) -> str:
        """``balance_point=<x> ci=[<lo>, <hi>]`` or ``balance_point=none (<reason>)``."""
        if not self.crosses:
            return f"balance_point=none ({self.reason})"
        return f"balance_point={self.value:.3f} ci=[{self.ci_low:.3f}, {self.ci_high:.3f}]"


@dataclass(frozen=True)
class MonotonicityTest:
    """Is P(text) decreasing in x? (SCIENCE.md section 1, "The law": test monotonicity.)

    Attributes:
        slope: Logistic slope b.
        slope_ci: Percentile-bootstrap interval of b.
        p_value: One-sided bootstrap p-value of "b >= 0" (share of replicates with
            b >= 0; resolution 1 / n_bootstrap).
        spearman_rho: Spearman's rho between bin mean x and bin rate.
        spearman_p: Its two-sided p-value (NaN with fewer than 3 bins).
        n_bins: Bins used for rho.
        decreasing: True when the whole slope interval is below 0.
    """

    slope: float
    slope_ci: tuple[float, float]
    p_value: float
    spearman_rho: float
    spearman_p: float
    n_bins: int
    decreasing: bool

    def summary(self) -> str:
        """One-line verdict with the slope interval and rho."""
        verdict = "decreasing" if self.decreasing else "not shown decreasing"
        return (
            f"monotonicity: {verdict}; slope={self.slope:.3f} "
            f"ci=[{self.slope_ci[0]:.3f}, {self.slope_ci[1]:.3f}] p(b>=0)={self.p_value:.3g}; "
            f"spearman_rho={self.spearman_rho:.3f} over {self.n_bins} bins "
            f"(p={self.spearman_p:.3g})"
        )


@dataclass(frozen=True)
class Law:
    """The fitted law for one set of decided conflict items (SCIENCE.md section 1).

    Attributes:
        x_label: Axis label (e.g. ``dH_rel``).
        n: Decided items used.
        n_text: Of which text-following.
        binned: `binned_following_rate` table.
        logistic: Full-sample `LogisticFit`.
        isotonic: Full-sample `IsotonicFit`.
        grid: ``points`` x values spanning the observed range.
        logistic_curve: ``points`` fitted P(text) on the grid.
        logistic_band: ``(low, high)``, each ``points``: pointwise bootstrap band.
        isotonic_curve: ``points`` isotonic fit on the grid.
        isotonic_band: ``(low, high)`` bootstrap band of the isotonic fit, or None.
        monotonicity: `MonotonicityTest`.
        balance_point: `BalancePoint`.
        bootstrap_coef: ``replicates 2`` bootstrap ``(a, b)`` (for further analyses).
        confidence: Interval level.
        seed: Bootstrap seed.
        n_clusters: Clusters the bootstrap resampled (None: it resampled items).
    """

    x_label: str
    n: int
    n_text: int
    binned: pd.DataFrame
    logistic: LogisticFit
    isotonic: IsotonicFit
    grid: np.ndarray
    logistic_curve: np.ndarray
    logistic_band: tuple[np.ndarray, np.ndarray]
    isotonic_curve: np.ndarray
    isotonic_band: tuple[np.ndarray, np.ndarray] | None
    monotonicity: MonotonicityTest
    balance_point: BalancePoint
    bootstrap_coef: np.ndarray = field(repr=False)
    confidence: float = 0.95
    seed: int = 0
    n_clusters: int | None = None


# --------------------------------------------------------------------------- fitting


def _crossing(coef: np.ndarray) -> np.ndarray:
    """``-a / b`` per row of ``replicates 2`` coefficients (+-inf when b == 0)."""
    a, b = coef[:, 0], coef[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = -a / b
    return np.where(b == 0, np.where(a > 0, np.inf, -np.inf), x0)


def _constant_outcome_coef(n: int, n_text: int) -> np.ndarray:
    """A flat fit for data with one outcome only (the MLE is at +-infinity)."""
    # Smoothed log-odds keep the flat curve on the right side of 0.5 and finite.
    return np.array([[np.log((n_text + 0.5) / (n - n_text + 0.5)), 0.0]])


def _bootstrap_logistic(
    x: np.ndarray,
    y: np.ndarray,
    coef0: np.ndarray,
    n_bootstrap: int,
    rng: np.random.Generator,
    codes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Resample and refit: ``(replicates 2 coef, replicates items counts)``.

    Without ``codes`` items are drawn with replacement; with ``codes`` (`cluster_codes`)
    as many clusters as there are are drawn with replacement and each drawn cluster
    brings all its items. ``counts[r, i]`` is how many times replicate ``r`` holds item
    ``i``.
    """
    n = x.size
    init = np.repeat(coef0.reshape(1, 2), n_bootstrap, axis=0)
    rows = np.arange(n_bootstrap)[:, None]
    if codes is None:
        idx = rng.integers(0, n, size=(n_bootstrap, n))
        counts = np.zeros((n_bootstrap, n))
        np.add.at(counts, (np.broadcast_to(rows, idx.shape), idx), 1.0)
        yb = y[idx]
        coef, _, _ = fit_logistic_batch(x[idx], yb, init=init)
        k, total = yb.sum(axis=1), np.full(n_bootstrap, float(n))
    else:
        counts = cluster_resample_weights(codes, n_bootstrap, rng)
        coef, _, _ = fit_logistic_batch(x.reshape(1, -1), y.reshape(1, -1), init=init,
                                        weights=counts)
        k, total = counts @ y, counts.sum(axis=1)
    # Replicates with one outcome only have no finite MLE: give them the flat fit.
    flat = (k == 0) | (k == total)
    if flat.any():
        coef[flat, 0] = np.log((k[flat] + 0.5) / (total[flat] - k[flat] + 0.5))
        coef[flat, 1] = 0.0
    return coef, counts


def _balance_point(
    coef: np.ndarray, boot_coef: np.ndarray, x_range: tuple[float, float], confidence: float
) -> BalancePoint:
    """Assemble a `BalancePoint` from the full-sample and bootstrap coefficients."""
    lo, hi = x_range
    x0 = float(_crossing(coef.reshape(1, 2))[0])
    boot_x0 = _crossing(boot_coef)
    share = float(np.mean((boot_x0 >= lo) & (boot_x0 <= hi)))
    alpha = 1.0 - confidence
    crosses = bool(np.isfinite(x0) and lo <= x0 <= hi)
    if crosses:
        ci = np.quantile(boot_x0, [alpha / 2, 1 - alpha / 2])
        return BalancePoint(
            value=x0,
            ci_low=float(ci[0]),
            ci_high=float(ci[1]),
            crosses=True,
            direction=None,
            reason=None,
            extrapolated=x0,
            x_range=x_range,
            share_crossing=share,
            confidence=confidence,
            n_bootstrap=boot_coef.shape[0],
        )
    p_mid = float(expit(coef[0] + coef[1] * (lo + hi) / 2))
    direction = "text" if p_mid > 0.5 else "vision"
    where = (
        "the fit is flat" if not np.isfinite(x0) else f"it would cross at {x0:.3f} by extrapolation"
    )
    reason = (
        f"fitted P(text) stays {'above' if direction == 'text' else 'below'} 0.5 over the "
        f"observed range [{lo:.3f}, {hi:.3f}], so items follow the {direction} throughout; "
        f"{where}; {share:.0%} of bootstrap fits cross in range"
    )
    return BalancePoint(
        value=float("nan"),
        ci_low=float("nan"),
        ci_high=float("nan"),
        crosses=False,
        direction=direction,
        reason=reason,
        extrapolated=x0,
        x_range=x_range,
        share_crossing=share,
        confidence=confidence,
        n_bootstrap=boot_coef.shape[0],
    )


def _clean_xy(
    x: Any, followed_text: Any, clusters: Any | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Finite-x items as float arrays, and their cluster codes (None without clusters)."""
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).astype(np.float64).reshape(-1)
    if xv.size != yv.size:
        raise ValueError(f"x has {xv.size} items but followed_text has {yv.size}")
    keep = np.isfinite(xv)
    codes = None if clusters is None else cluster_codes(clusters, xv.size, keep)
    xv, yv = xv[keep], yv[keep]
    if xv.size < 3:
        raise ValueError(f"the law needs at least 3 decided items with a finite x, got {xv.size}")
    if codes is not None and codes.max() < 1:
        raise ValueError("a cluster bootstrap needs at least 2 clusters; all items share one")
    return xv, yv, codes


def _fit_full(xv: np.ndarray, yv: np.ndarray) -> LogisticFit:
    k = int(yv.sum())
    if k in (0, xv.size):
        coef = _constant_outcome_coef(xv.size, k)[0]
        return LogisticFit(float(coef[0]), 0.0, False, 0)
    return fit_logistic(xv, yv)


def balance_point(
    x: Any,
    followed_text: Any,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: Any | None = None,
) -> BalancePoint:
    """Balance point ``x* = -a / b`` of the logistic law, with a bootstrap interval.

    SCIENCE.md section 1, "Balance point": the x at which the fitted
    ``P(text | x) = sigmoid(a + b x)`` equals 0.5. The interval is the percentile
    interval of ``-a_r / b_r`` over ``n_bootstrap`` resamples ``r`` of the items (or of
    the ``clusters``: see the module docstring). When the fitted
    curve does not cross 0.5 inside ``[min x, max x]``, no number is reported:
    ``crosses`` is False and ``direction``/``reason`` say on which side it stays.
    The same computation runs inside `fit_law`, which also returns the curves.

    Args:
        x: ``items`` axis values of decided conflict items (NaN entries are dropped).
        followed_text: ``items`` bools (True = text-following, False = vision).
        n_bootstrap: Bootstrap replicates.
        confidence: Interval level.
        seed: Seed of the resampling.
        clusters: ``items`` cluster labels: resample whole clusters instead of items.

    Returns:
        `BalancePoint`.
    """
    xv, yv, codes = _clean_xy(x, followed_text, clusters)
    fit = _fit_full(xv, yv)
    coef = np.array([fit.intercept, fit.slope])
    rng = np.random.default_rng(seed)
    boot, _ = _bootstrap_logistic(xv, yv, coef, n_bootstrap, rng, codes)
    return _balance_point(coef, boot, (float(xv.min()), float(xv.max())), confidence)


def fit_law(
    x: Any,
    followed_text: Any,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    bins: int | Sequence[float] = 10,
    bin_strategy: BinStrategy = "quantile",
    seed: int = 0,
    grid_size: int = 101,
    isotonic_band: bool = True,
    x_label: str = "dH_rel",
    clusters: Any | None = None,
) -> Law:
    """Fit the modality-following law with bootstrap bands and its balance point.

    SCIENCE.md section 1, "The law" and "Balance point". Binned rates (Wilson
    intervals), an isotonic non-increasing fit, and the logistic fit
    ``P(text | x) = sigmoid(a + b x)``; ``n_bootstrap`` item resamples give pointwise
    percentile bands for both curves, the slope interval of the monotonicity test
    (decreasing when the whole interval is below 0) and the balance-point interval.
    Spearman's rho is computed between bin mean x and bin rate.

    Args:
        x: ``items`` axis values of decided conflict items (NaN entries are dropped).
        followed_text: ``items`` bools (True = text-following, False = vision).
        n_bootstrap: Bootstrap replicates.
        confidence: Level of bands and intervals.
        bins: Bin count or edges for the displayed rates.
        bin_strategy: ``"quantile"`` or ``"uniform"`` bins.
        seed: Seed of the resampling.
        grid_size: Points of the curve grid over the observed range.
        isotonic_band: Also bootstrap the isotonic fit (one scipy call per replicate).
        x_label: Axis name carried into plots.
        clusters: ``items`` cluster labels: the bootstrap resamples whole clusters
            (items whose outcomes are correlated) instead of single items.

    Returns:
        `Law`.

    Raises:
        ValueError: With fewer than 3 usable items.
    """
    xv, yv, codes = _clean_xy(x, followed_text, clusters)
    fit = _fit_full(xv, yv)
    coef = np.array([fit.intercept, fit.slope])
    rng = np.random.default_rng(seed)
    boot, counts = _bootstrap_logistic(xv, yv, coef, n_bootstrap, rng, codes)
    x_range = (float(xv.min()), float(xv.max()))
    grid = np.linspace(x_range[0], x_range[1], grid_size)
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    boot_curves = expit(boot[:, :1] + boot[:, 1:] * grid)
    band = np.quantile(boot_curves, q, axis=0)
    iso = fit_isotonic(xv, yv)
    iso_band = None
    if isotonic_band:
        iso_curves = np.empty((n_bootstrap, grid.size))
        for r in range(n_bootstrap):
            iso_curves[r] = fit_isotonic(xv, yv, weights=counts[r]).predict(grid)
        iso_q = np.quantile(iso_curves, q, axis=0)
        iso_band = (iso_q[0], iso_q[1])
    binned = binned_following_rate(xv, yv.astype(bool), bins, bin_strategy, confidence)
    if len(binned) >= 3 and binned["rate"].nunique() > 1:
        rho, rho_p = stats.spearmanr(binned["x_mean"], binned["rate"])
    else:
        rho, rho_p = float("nan"), float("nan")
    slope_ci = np.quantile(boot[:, 1], q)
    monotonicity = MonotonicityTest(
        slope=fit.slope,
        slope_ci=(float(slope_ci[0]), float(slope_ci[1])),
        p_value=float(np.mean(boot[:, 1] >= 0)),
        spearman_rho=float(rho),
        spearman_p=float(rho_p),
        n_bins=len(binned),
        decreasing=bool(slope_ci[1] < 0),
    )
    return Law(
        x_label=x_label,
        n=int(xv.size),
        n_text=int(yv.sum()),
        binned=binned,
        logistic=fit,
        isotonic=iso,
        grid=grid,
        logistic_curve=fit.predict(grid),
        logistic_band=(band[0], band[1]),
        isotonic_curve=iso.predict(grid),
        isotonic_band=iso_band,
        monotonicity=monotonicity,
        balance_point=_balance_point(coef, boot, x_range, confidence),
        bootstrap_coef=boot,
        confidence=confidence,
        seed=seed,
        n_clusters=None if codes is None else int(codes.max()) + 1,
    )


@dataclass(frozen=True)
class EntropySplit:
    """The law in the low- and high-total-entropy halves (SCIENCE.md section 1).

    Attributes:
        median_total: Median of ``H_t + H_v`` over the items (the split point).
        low: Law for items with ``H_t + H_v <= median``.
        high: Law for items above the median.
    """

    median_total: float
    low: Law
    high: Law


def split_by_entropy(
    h_text: Any,
    h_vision: Any,
    x: Any,
    followed_text: Any,
    clusters: Any | None = None,
    **law_kwargs: Any,
) -> EntropySplit:
    """Fit the law separately below and above the median total entropy.

    SCIENCE.md section 1, "Robustness split": split at ``median(H_t + H_v)`` (raw
    entropies, no floor); the law should hold in both halves, and the balance point
    should move toward 0 in the high-entropy half. Items whose total equals the median
    go to the low half (with saturated data many totals tie, so halves can be unequal).

    Args:
        h_text: ``items`` H_t.
        h_vision: ``items`` H_v.
        x: ``items`` axis values.
        followed_text: ``items`` bools.
        clusters: ``items`` cluster labels for a cluster bootstrap (see `fit_law`).
        **law_kwargs: Passed to `fit_law`.

    Returns:
        `EntropySplit`.
    """
    total = to_numpy(h_text).reshape(-1) + to_numpy(h_vision).reshape(-1)
    xv = to_numpy(x).reshape(-1)
    yv = to_numpy(followed_text, dtype=bool).reshape(-1)
    median = float(np.median(total))
    low = total <= median
    labels = None if clusters is None else np.asarray(clusters, dtype=object).reshape(-1)
    return EntropySplit(
        median_total=median,
        low=fit_law(xv[low], yv[low], clusters=None if labels is None else labels[low],
                    **law_kwargs),
        high=fit_law(xv[~low], yv[~low], clusters=None if labels is None else labels[~low],
                     **law_kwargs),
    )
