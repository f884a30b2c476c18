"""Bootstrap resampling: whole clusters of correlated items, or single items.

Items made together (one scene, one image, one template) share more than the variables
an analysis models, so their outcomes correlate. A bootstrap that resamples single items
treats them as independent and its intervals come out too narrow. These helpers turn
cluster labels into the item multiplicities of a cluster bootstrap (and, without
labels, of the ordinary item bootstrap), which every interval of modprobe shares
(`modprobe.stats.intervals`, the law's fits, following rates, oscillation summaries).
Definitions: docs/science.md, "Intervals".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def cluster_codes(clusters: Any, n: int, keep: np.ndarray | None = None) -> np.ndarray:
    """Integer codes 0..G-1 of cluster labels (any hashable values).

    Args:
        clusters: ``items`` labels, one per item (checked against ``n``).
        n: Number of items.
        keep: ``items`` bools: return the codes of these items only, renumbered
            0..G'-1 over the clusters they span (leaving items out may empty a cluster).

    Returns:
        ``items`` int64 codes (of the kept items), numbered in order of first appearance.

    Raises:
        ValueError: When the labels do not match the items, or one is missing.
    """
    labels = pd.Series(np.asarray(clusters, dtype=object).reshape(-1))
    if labels.size != n:
        raise ValueError(f"clusters has {labels.size} labels for {n} items")
    if labels.isna().any():
        raise ValueError(f"{int(labels.isna().sum())} items have no cluster label; give every "
                         "item one (its own id, for an item that shares nothing)")
    if keep is not None:
        labels = labels[np.asarray(keep, dtype=bool)]
    codes, _ = pd.factorize(labels)
    return codes.astype(np.int64)


def cluster_resample_weights(
    codes: np.ndarray, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """Item multiplicities of a cluster bootstrap.

    Each replicate draws as many clusters as there are, with replacement; an item counts
    as many times as its cluster was drawn (0 when it was not).

    Args:
        codes: ``items`` cluster codes 0..G-1 (`cluster_codes`).
        n_bootstrap: Replicates.
        rng: Random generator.

    Returns:
        ``replicates items`` float weights: how many times each item's cluster was drawn.
    """
    n_clusters = int(codes.max()) + 1
    draws = rng.integers(0, n_clusters, size=(n_bootstrap, n_clusters))
    per_cluster = np.zeros((n_bootstrap, n_clusters))
    rows = np.broadcast_to(np.arange(n_bootstrap)[:, None], draws.shape)
    np.add.at(per_cluster, (rows, draws), 1.0)
    return per_cluster[:, codes]


def resample_weights(
    n_items: int, n_bootstrap: int, rng: np.random.Generator, codes: np.ndarray | None = None
) -> np.ndarray:
    """Item multiplicities of the bootstrap every analysis uses.

    With ``codes`` whole clusters are drawn (`cluster_resample_weights`); without, every
    item is its own cluster, which is the ordinary item bootstrap (``n_items`` draws with
    replacement per replicate).

    Args:
        n_items: Items.
        n_bootstrap: Replicates.
        rng: Random generator.
        codes: ``items`` cluster codes, or None for independent items.

    Returns:
        ``replicates items`` float weights (`cluster_resample_weights`).

    Raises:
        ValueError: When ``codes`` does not have ``n_items`` entries.
    """
    if codes is None:
        codes = np.arange(n_items)
    elif codes.size != n_items:
        raise ValueError(f"{codes.size} cluster codes for {n_items} items")
    return cluster_resample_weights(np.asarray(codes, dtype=np.int64), n_bootstrap, rng)


def n_clusters_of(codes: np.ndarray | None, n_items: int) -> int:
    """The number of independent units: clusters given ``codes``, else the items.

    Args:
        codes: ``items`` cluster codes ``0..k-1`` (`cluster_codes`), or None.
        n_items: Items (the count when there are no codes).

    Returns:
        ``k``, or ``n_items`` without codes (or with an empty array of them).
    """
    return n_items if codes is None or codes.size == 0 else int(codes.max()) + 1
