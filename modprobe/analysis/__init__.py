"""Section-1 analyses on plain tables: uncertainty, following, the law, oscillation.

No model code here: everything takes numpy arrays, torch tensors (converted) or pandas
tables, so it serves modprobe's captures and predictions from any model alike.
Definitions: docs/science.md section 1. Walk-through with figures: docs/analyses.md.

Public API
----------
High level (used by ``python -m modprobe.following`` and the study runner)::

    analyze_following(table, axis="rel", entropy_floor=0.0, filter_correct=None,
                      conflict_group="conflict", n_bootstrap=2000, confidence=0.95,
                      bins=10, seed=0, split=True, isotonic_band=True, cluster="auto",
                      balance_estimate="auto") -> FollowingReport
        FollowingReport.models[name] -> ModelFollowing(rates, axis, items, law, split,
                                                       filter_steps, ...)
        FollowingReport.summary_lines() / .laws;  ModelFollowing.to_dict() (summary.json)
    oscillation_report(counts, x, balance_point, groups=None, region_group="conflict",
                       radius=0.5, n_bootstrap=2000, confidence=0.95, seed=0)
        -> OscillationReport(per_item, by_region, by_group, ambiguous_minus_clear, ...)

Tables (`modprobe.analysis.table`)::

    read_table(path) -> DataFrame;  validate_table(frame) -> DataFrame  (raise TableError)

Uncertainty (`modprobe.analysis.following.uncertainty`)::

    entropy(scores, axis=-1, candidates=None) -> ndarray           # logits or log-probs
    uncertainty_axis(h_text, h_vision, axis="rel"|"abs", entropy_floor=0.0) -> UncertaintyAxis
    relative_uncertainty(h_text, h_vision, entropy_floor=0.0) -> UncertaintyAxis
    absolute_uncertainty(h_text, h_vision, entropy_floor=0.0) -> UncertaintyAxis
    saturation_share(dh_rel, threshold=1.5) -> float

Following (`modprobe.analysis.following.rates`)::

    normalize_answer(value) -> comparable answer (" Red." -> "red"; the one normaliser)

    classify_following(y_text, y_vision, y_multi) -> ndarray of "text"|"vision"|"other"|"no_conflict"
    following_rates(labels, correct_text=None, correct_vision=None, filter_correct=False,
                    confidence=0.95, clusters=None, n_bootstrap=1000, seed=0)
                    -> FollowingRates
    wilson_interval(successes, trials, confidence=0.95) -> (low, high)

The law (`modprobe.analysis.following.law`)::

    fit_law(x, followed_text, n_bootstrap=2000, confidence=0.95, bins=10, ...,
            clusters=None, balance_estimate="auto") -> Law
        Law.balance_point (logistic), .balance_point_monotone, .goodness_of_fit,
        .monotonicity, .recommendation / .recommendation_reason, .summary_lines()
    balance_point(x, followed_text, n_bootstrap=2000, confidence=0.95, seed=0,
                  clusters=None) -> BalancePoint   (logistic only)
    split_by_entropy(h_text, h_vision, x, followed_text, clusters=None,
                     **fit_law_kwargs) -> EntropySplit   (following.entropy_split)
    binned_following_rate(x, followed_text, bins=10, strategy="quantile") -> DataFrame
    (the fits, tests and intervals themselves live in `modprobe.stats`: logistic,
    monotone, binning, gof, intervals, resample)

Oscillation (`modprobe.analysis.following.oscillation`)::

    layer_states(layer_top1, y_text, y_vision) -> list["T"|"V"|"O"]
    states_from_logits(logit_text, logit_vision, logit_other_max=None) -> list[str]
    count_switches(states) -> int
    oscillation_counts(layer_top1, y_text, y_vision) -> ndarray (NaN: not a conflict)
    assign_regions(x, balance_point, radius=0.5) -> ndarray
    logit_difference(lens_logits, text_ids, vision_ids) -> ndarray (layers items)
    logit_difference_matrix(logit_diff, x) -> LogitDifferenceMatrix  (following.logit_difference)

Plots (imported lazily, each returns a Figure, ``path=`` saves)::

    plot_following_curve(laws, ...), plot_uncertainty_distribution(values, ...),
    plot_oscillation(reports, ...)                       # following.plots
    plot_logit_difference(matrix, ...), plot_attention_mass(frame, ...)
                                                         # following.layer_plots
    save_figure(fig, path), new_figure, figure_and_axes  # plotting (shared)

``clusters`` (labels per item) makes the bootstrap resample whole clusters of correlated
items instead of single items; ``analyze_following(table, cluster=COLUMN)`` passes a
table column.

Sabotage (docs/science.md section 3; docs/sabotage.md; imported from their modules)::

    load_agents(source, gold="auto", scores="candidates", scale="auto") -> AgentOutputs
        # sabotage_runs: a JSONL of agent outputs, a study or an interference run folder
    read_agent_jsonl(path, scale="auto"), agent_table(records)   # sabotage_input
    SELF_ASSESSMENT_PROMPT, parse_reply(text) -> ParsedReply     # sabotage_replies
    fuse(table, weights="equal", agents=None) -> DataFrame       # sabotage
    analyze_sabotage(outputs, tau=0.7, weights="equal", fuse_joint=False, bins=10)
        -> SabotageReport(per_agent, items, rates, topk, calibration, ece, sabotaged)
    write_report(report, out), draw_figures(report_folder, out)  # sabotage_report

Simulation and calibration: `modprobe.analysis.following.simulate` (planted-law tables,
``simulate_clustered_law``) and `modprobe.analysis.following.calibration`, run by
``modprobe calibration`` (balance-point interval coverage; ``--clusters N --unit
cluster`` for clustered data).
"""

from __future__ import annotations

from modprobe.analysis._arrays import normalize_answer
from modprobe.analysis.following.entropy_split import EntropySplit, split_by_entropy
from modprobe.analysis.following.law import (
    BalancePoint,
    IsotonicFit,
    Law,
    LogisticFit,
    MonotonicityTest,
    balance_point,
    binned_following_rate,
    fit_isotonic,
    fit_law,
    fit_logistic,
    fit_logistic_batch,
)
from modprobe.analysis.following.logit_difference import (
    LogitDifferenceMatrix,
    logit_difference,
    logit_difference_matrix,
)
from modprobe.analysis.following.oscillation import (
    OscillationReport,
    assign_regions,
    count_switches,
    layer_states,
    oscillation_counts,
    oscillation_report,
    states_from_logits,
)
from modprobe.analysis.following.rates import (
    FollowingRates,
    classify_following,
    following_rates,
    wilson_interval,
)
from modprobe.analysis.following.report import analyze_following
from modprobe.analysis.following.results import FollowingReport, ModelFollowing
from modprobe.analysis.following.uncertainty import (
    UncertaintyAxis,
    absolute_uncertainty,
    entropy,
    relative_uncertainty,
    saturation_share,
    uncertainty_axis,
)
from modprobe.analysis.table import TableError, read_table, validate_table

__all__ = [
    "BalancePoint",
    "EntropySplit",
    "FollowingRates",
    "FollowingReport",
    "IsotonicFit",
    "Law",
    "LogisticFit",
    "LogitDifferenceMatrix",
    "ModelFollowing",
    "MonotonicityTest",
    "OscillationReport",
    "TableError",
    "UncertaintyAxis",
    "absolute_uncertainty",
    "analyze_following",
    "assign_regions",
    "balance_point",
    "binned_following_rate",
    "classify_following",
    "count_switches",
    "entropy",
    "fit_isotonic",
    "fit_law",
    "fit_logistic",
    "fit_logistic_batch",
    "following_rates",
    "layer_states",
    "logit_difference",
    "logit_difference_matrix",
    "normalize_answer",
    "oscillation_counts",
    "oscillation_report",
    "read_table",
    "relative_uncertainty",
    "saturation_share",
    "split_by_entropy",
    "states_from_logits",
    "uncertainty_axis",
    "validate_table",
    "wilson_interval",
]
