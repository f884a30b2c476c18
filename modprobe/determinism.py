"""Deterministic torch for training: one helper for every trainer of modprobe.

```python
from modprobe.determinism import deterministic_torch
with deterministic_torch(seed=0, threads=1):
    train()   # same seed and thread count -> identical weights on CPU
```
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def deterministic_torch(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seeded, deterministic, optionally fixed-thread torch; global state restored after.

    The CPU random state is forked (the caller's stream is untouched), seeded with
    ``seed``, and deterministic kernels are switched on (warn-only: an op without a
    deterministic kernel warns instead of failing). On CPU the same seed then gives the
    same numbers for a given thread count; another thread count can change the order of
    float sums.

    Args:
        seed: Seed of torch's CPU random stream inside the block.
        threads: Torch CPU threads inside the block (None or 0: leave as is).

    Yields:
        Nothing; the block runs seeded and deterministic.
    """
    import torch

    before_threads = torch.get_num_threads()
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.set_num_threads(before_threads)
            torch.use_deterministic_algorithms(before, warn_only=warn_only)
