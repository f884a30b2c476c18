"""Entropy and the uncertainty axis (docs/science.md section 1)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from modprobe.analysis.following.uncertainty import (
    absolute_uncertainty,
    entropy,
    log_softmax,
    relative_uncertainty,
    saturation_share,
    uncertainty_axis,
)


def test_uniform_logits_have_entropy_log_vocab() -> None:
    assert entropy(np.zeros(7)) == pytest.approx(math.log(7))


def test_entropy_matches_definition_on_a_small_distribution() -> None:
    p = np.array([0.5, 0.25, 0.125, 0.125])
    expected = -np.sum(p * np.log(p))
    assert entropy(np.log(p)) == pytest.approx(expected)
    # Logits are log-probabilities up to a constant: same entropy.
    assert entropy(np.log(p) + 13.0) == pytest.approx(expected)


def test_entropy_is_stable_for_huge_logits_and_masked_entries() -> None:
    logits = np.array([[1e4, 0.0, -1e4], [50.0, 50.0, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = entropy(logits)
    assert h.shape == (2,)
    assert h[0] == pytest.approx(0.0, abs=1e-12)
    assert h[1] == pytest.approx(math.log(2))


def test_entropy_over_a_batch_and_another_axis() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 11))
    h_last = entropy(logits)
    h_mid = entropy(np.moveaxis(logits, -1, 1), axis=1)
    assert h_last.shape == (3, 5)
    np.testing.assert_allclose(h_last, h_mid)
    assert np.all(h_last > 0) and np.all(h_last < math.log(11))


def test_candidate_restricted_entropy_renormalises_over_candidates() -> None:
    logits = np.array([2.0, 0.0, 1.0, -3.0, 5.0])
    candidates = [0, 2]
    p = np.exp([2.0, 1.0]) / np.exp([2.0, 1.0]).sum()
    assert entropy(logits, candidates=candidates) == pytest.approx(-np.sum(p * np.log(p)))
    assert entropy(logits, candidates=candidates) != pytest.approx(entropy(logits))


def test_log_softmax_normalises() -> None:
    out = log_softmax(np.array([[3.0, 1.0, -2.0]]))
    assert np.exp(out).sum() == pytest.approx(1.0)


def test_entropy_accepts_torch_tensors() -> None:
    try:
        import torch
    except (ImportError, OSError):  # torch missing or broken in this environment
        pytest.skip("torch not importable")
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0]], dtype=torch.bfloat16)
    h = entropy(logits)
    assert isinstance(h, np.ndarray)
    assert h[0] == pytest.approx(math.log(4), rel=1e-3)
    assert h[1] < 0.01


def test_relative_uncertainty_values() -> None:
    axis = relative_uncertainty([1.0, 1.0, 0.0, 0.3], [1.0, 0.0, 1.0, 0.1])
    np.testing.assert_allclose(axis.values, [0.0, 2.0, -2.0, 1.0])
    assert axis.axis == "rel"
    assert not axis.degenerate.any()


def test_degenerate_items_are_flagged_without_division_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        axis = relative_uncertainty([0.0, 0.2], [0.0, 0.2])
    assert axis.degenerate.tolist() == [True, False]
    assert np.isnan(axis.values[0]) and axis.values[1] == 0.0
    assert axis.n_degenerate == 1


def test_entropy_floor_tames_saturated_items() -> None:
    # Two near-certain answers: 0.001 vs 0.003 nats is an extreme dH_rel of -1.
    raw = relative_uncertainty([0.001], [0.003])
    floored = relative_uncertainty([0.001], [0.003], entropy_floor=0.05)
    assert raw.values[0] == pytest.approx(-1.0)
    assert floored.values[0] == pytest.approx(0.0)
    # Informative items keep their value when both entropies exceed the floor.
    assert relative_uncertainty([0.3], [0.1], entropy_floor=0.05).values[0] == pytest.approx(1.0)
    # The floor also removes degeneracy.
    assert not relative_uncertainty([0.0], [0.0], entropy_floor=0.01).degenerate[0]


def test_absolute_axis_is_the_difference_in_nats() -> None:
    axis = absolute_uncertainty([0.001, 1.5, 0.0], [0.003, 0.5, 0.0])
    np.testing.assert_allclose(axis.values, [-0.002, 1.0, 0.0])
    assert axis.axis == "abs" and not axis.degenerate.any()
    assert "nats" in axis.label


@pytest.mark.parametrize(
    ("h_text", "h_vision", "kwargs"),
    [
        ([-0.1], [0.2], {}),
        ([np.nan], [0.2], {}),
        ([0.1], [np.inf], {}),
        ([0.1, 0.2], [0.2], {}),
        ([0.1], [0.2], {"axis": "log"}),
        ([0.1], [0.2], {"entropy_floor": -1.0}),
    ],
)
def test_invalid_inputs_raise(h_text: list[float], h_vision: list[float], kwargs: dict) -> None:
    with pytest.raises(ValueError):
        uncertainty_axis(h_text, h_vision, **kwargs)


def test_saturation_share_counts_extreme_values_and_ignores_nan() -> None:
    assert saturation_share([1.9, -1.8, 0.1, 1.5, np.nan]) == pytest.approx(0.5)
    assert np.isnan(saturation_share([np.nan]))
