"""modprobe.stats.gof: Hosmer-Lemeshow, with the design-effect correction for clusters."""

from __future__ import annotations

import json

import numpy as np
from scipy.special import expit

from modprobe.analysis.following.simulate import simulate_clustered_law, simulate_step_law
from modprobe.stats import fit_isotonic, hosmer_lemeshow
from modprobe.stats.logistic import fit_logistic


def test_statistic_by_hand() -> None:
    p = np.repeat([0.2, 0.5, 0.8], 10)
    y = np.r_[np.zeros(8), np.ones(2), np.zeros(5), np.ones(5), np.zeros(1), np.ones(9)]
    gof = hosmer_lemeshow(y, p, groups=3)
    expected = sum((o - e) ** 2 / (e * (1 - e / 10)) for o, e in ((2, 2), (5, 5), (9, 8)))
    assert gof.groups == 3 and gof.df == 1
    assert np.isclose(gof.statistic, expected) and gof.design_effect == 1.0
    json.dumps(gof.to_dict(), allow_nan=False)


def test_a_logistic_truth_is_rarely_rejected_and_a_step_nearly_always() -> None:
    rng = np.random.default_rng(0)
    rejected_logistic = rejected_step = 0
    n = 150
    for _ in range(n):
        x = rng.uniform(-2, 2, 600)
        y = rng.random(600) < expit(-2.0 * (x + 0.3))
        rejected_logistic += hosmer_lemeshow(y, fit_logistic(x, y).predict(x)).rejected
        xs, ys, _ = simulate_step_law(30, 20, -1.8, 0.8, 0.25, 0.0, rng)
        rejected_step += hosmer_lemeshow(ys, fit_logistic(xs, ys).predict(xs)).rejected
    assert rejected_logistic / n <= 0.10  # nominal 0.05 (0.0425 over 400 datasets)
    assert rejected_step / n >= 0.9


def test_clusters_inflate_the_design_effect_and_keep_the_level() -> None:
    # Logistic truth with cluster shifts: the marginal curve is close to logistic, but
    # clustered outcomes inflate the raw statistic; the correction keeps the level.
    rng = np.random.default_rng(1)
    raw = corrected = 0
    n = 80
    for _ in range(n):
        x, y, c = simulate_clustered_law(15, 40, 0.0, -1.5, 1.0, rng, x_range=(-2, 2),
                                         x_spread=0.4)
        p = fit_logistic(x, y).predict(x)
        gof = hosmer_lemeshow(y, p, clusters=c)
        raw += hosmer_lemeshow(y, p).rejected
        corrected += gof.rejected
        assert gof.design_effect >= 1.0
    assert corrected / n <= 0.12 < raw / n


def test_too_few_items_are_not_tested() -> None:
    gof = hosmer_lemeshow([0, 1, 1], [0.2, 0.5, 0.7])
    assert gof.verdict == "not tested" and "too few" in gof.describe()
    assert json.loads(json.dumps(gof.to_dict(), allow_nan=False))["p_value"] is None
    assert fit_isotonic([0.0, 1.0], [True, False]).crossing() == 0.5
