"""Logistic regression of a 0/1 outcome on one covariate: one fit or thousands at once.

The law's parametric fit ``P(text | x) = sigmoid(a + b x)`` (docs/science.md, "The
law"), its crossing point ``-a / b`` and its bootstrap: `fit_logistic_batch` solves many
weighted fits at once (a bootstrap replicate weights each item by how many times it was
drawn), so 2,000 resamples of a few thousand items take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit

from modprobe.stats._arrays import to_numpy


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
        """Fitted ``P(text | x)``.

        Args:
            x: Axis values (any shape).

        Returns:
            Probabilities of ``x``'s shape.
        """
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
    Used by the law's bootstrap (docs/science.md, "The law").

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
    x, y, weights = _broadcast_inputs(x, y, weights)
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
        step, ll_new = _damped_step(ca, xa, ya, wa, ll_old)
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


def _broadcast_inputs(
    x: Any, y: Any, weights: Any | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``x``, ``y`` (and ``weights``) as float ``replicates items`` arrays of one shape."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    if weights is not None:
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        shape = np.broadcast_shapes(x.shape, y.shape, weights.shape)
        x, y, weights = (np.broadcast_to(a, shape) for a in (x, y, weights))
    return x, y, weights


def _newton_direction(
    coef: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None
) -> np.ndarray:
    """``replicates 2`` full Newton steps ``H^-1 g``, solved as 2x2 systems in closed form.

    ``g = sum w (y - p) [1, x]`` and ``H = sum w p (1 - p) [1, x][1, x]^T``; a step that
    is not finite (a singular ``H``) is 0.
    """
    p = expit(coef[:, :1] + coef[:, 1:] * x)
    w = p * (1.0 - p)
    resid = y - p
    if weights is not None:
        w = w * weights
        resid = resid * weights
    g0 = resid.sum(axis=1)
    g1 = (resid * x).sum(axis=1)
    h00 = w.sum(axis=1)
    h01 = (w * x).sum(axis=1)
    h11 = (w * x * x).sum(axis=1)
    # A relative ridge keeps the 2x2 solve defined when all p are ~0 or ~1
    # (separated replicates); it only shortens such steps.
    ridge = 1e-10 * (h00 + h11) + 1e-300
    h00 = h00 + ridge
    h11 = h11 + ridge
    det = h00 * h11 - h01 * h01
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        step = np.stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det], axis=1)
    return np.where(np.isfinite(step), step, 0.0)


def _damped_step(
    coef: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
    ll_old: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The Newton step per replicate, halved until the likelihood does not fall.

    Returns the ``replicates 2`` steps taken and the ``replicates`` log-likelihoods after
    them. The log-likelihood is concave, so a short enough step never lowers it; the
    halving stops after 30 tries.
    """
    step = _newton_direction(coef, x, y, weights)
    scale = np.ones(coef.shape[0])
    for _ in range(30):
        ll_new = _log_likelihood(coef + scale[:, None] * step, x, y, weights)
        worse = ll_new < ll_old - 1e-12 * np.abs(ll_old)
        if not worse.any():
            break
        scale = np.where(worse, scale / 2.0, scale)
    return scale[:, None] * step, ll_new


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

    docs/science.md, "The law" (the parametric fit). No statsmodels: the batched Newton
    solver `fit_logistic_batch` with one replicate. Data with one outcome only have no
    finite maximum: the flat fit of `flat_coef` is returned (slope 0, not converged).

    Args:
        x: ``items`` uncertainty-axis values (finite).
        followed_text: ``items`` bools, True for text-following, False for vision.
        max_iter: Newton iteration cap.

    Returns:
        `LogisticFit`.
    """
    xv = to_numpy(x).reshape(1, -1)
    yv = to_numpy(followed_text, dtype=bool).astype(np.float64).reshape(1, -1)
    k = int(yv.sum())
    if k in (0, yv.size):
        return LogisticFit(float(flat_coef(k, yv.size)[0]), 0.0, False, 0)
    coef, converged, n_iter = fit_logistic_batch(xv, yv, max_iter=max_iter)
    return LogisticFit(float(coef[0, 0]), float(coef[0, 1]), bool(converged[0]), n_iter)


def flat_coef(n_success: Any, n_total: Any) -> np.ndarray:
    """Flat coefficients ``(a, 0)`` for data with one outcome only (MLE at +-infinity).

    Smoothed log-odds ``a = log((k + 0.5) / (n - k + 0.5))`` keep the flat curve on the
    right side of 0.5 and finite.

    Args:
        n_success: Number of 1 outcomes ``k`` (a number or an array).
        n_total: Number of outcomes ``n``, broadcast against ``n_success``.

    Returns:
        ``... 2`` coefficients, one ``(a, 0)`` row per ``(k, n)``.
    """
    k = np.asarray(n_success, dtype=np.float64)
    n = np.asarray(n_total, dtype=np.float64)
    a = np.log((k + 0.5) / (n - k + 0.5))
    return np.stack([a, np.zeros_like(a)], axis=-1)


def crossing(coef: np.ndarray, level: float = 0.5) -> np.ndarray:
    """The ``x`` where ``sigmoid(a + b x) = level``, per row of coefficients.

    Args:
        coef: ``replicates 2`` coefficients ``(a, b)`` (one row may be given as ``2``).
        level: The probability crossed.

    Returns:
        ``replicates`` values ``(logit(level) - a) / b``; +-inf for a flat fit
        (``b = 0``), on the side where the curve would cross if it tilted the way its
        level lies (above ``level``: +inf).
    """
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    a, b = coef[:, 0], coef[:, 1]
    target = float(np.log(level / (1 - level)))
    with np.errstate(divide="ignore", invalid="ignore"):
        x0 = (target - a) / b
    return np.where(b == 0, np.where(a > target, np.inf, -np.inf), x0)


def bootstrap_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, init: np.ndarray
) -> np.ndarray:
    """Weighted logistic refits, one per bootstrap replicate (row of ``weights``).

    Args:
        x: ``items`` covariate.
        y: ``items`` outcomes in {0, 1}.
        weights: ``replicates items`` bootstrap multiplicities (`modprobe.stats.resample`).
        init: ``2`` starting coefficients (the full-sample fit).

    Returns:
        ``replicates 2`` coefficients ``(a, b)``; a replicate that drew one outcome only
        gets the flat fit of `flat_coef`.
    """
    n_rep = weights.shape[0]
    start = np.repeat(np.asarray(init, dtype=np.float64).reshape(1, 2), n_rep, axis=0)
    coef, _, _ = fit_logistic_batch(x.reshape(1, -1), y.reshape(1, -1), init=start,
                                    weights=weights)
    k, total = weights @ y, weights.sum(axis=1)
    flat = (k == 0) | (k == total)
    if flat.any():
        coef[flat] = flat_coef(k[flat], total[flat])
    return coef
