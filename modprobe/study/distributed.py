"""The world of a data-parallel run: which process this is, and how the processes meet.

A study started by a launcher (``torchrun --nproc-per-node N -m modprobe.layers ...`` or
``accelerate launch -m modprobe.layers ...``) runs as N processes (ranks). Both launchers
set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`current_world` reads them and joins the ranks in a ``torch.distributed`` group on
the gloo backend (it runs on CPUs and beside CUDA; the ranks only exchange small messages:
the run folder's manifest and barriers, never tensors). Without a launcher the world is
one process and nothing is initialised.

The run driver (:mod:`modprobe.study.driver`) uses the world so that rank 0 checks and
prepares the run folder (and takes its lock) before any rank writes, every rank captures
its own :class:`Shard` of the chunks, and rank 0 gathers and
analyses after a barrier.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from modprobe.errors import ModprobeError
from modprobe.study.runfolder import StudyError

T = TypeVar("T")

#: How long a rank waits at a barrier for the others (a shard of a large model's study may
#: take hours longer on one rank than on another; a dead rank is noticed by the launcher).
BARRIER_TIMEOUT = timedelta(hours=48)


class DistributedError(ModprobeError):
    """Another rank of a data-parallel run refused the run (its message is repeated)."""


@dataclass(frozen=True)
class Shard:
    """The chunks one process of a data-parallel run captures: ``index % count == rank``.

    The default (rank 0 of 1) takes every chunk. Each chunk is written by exactly one rank,
    so ranks never write the same file; the tables are gathered once every chunk is done.
    """

    rank: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        """Refuse a rank outside ``0..count-1``."""
        if not 0 <= self.rank < self.count:
            raise StudyError(f"shard rank must be in 0..{self.count - 1}, got {self.rank}")

    def takes(self, chunk: int) -> bool:
        """Whether chunk number ``chunk`` belongs to this shard."""
        return chunk % self.count == self.rank


@dataclass
class World:
    """The processes of one run.

    Attributes:
        rank: This process's rank (0 is the main process).
        count: Number of processes.
        local_rank: Rank on this machine (picks the GPU).
        group: The gloo process group the ranks meet in (None for one process).
    """

    rank: int = 0
    count: int = 1
    local_rank: int = 0
    group: Any = None

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that prepares, gathers and analyses."""
        return self.rank == 0

    @property
    def shard(self) -> Any:
        """This rank's chunks (:class:`Shard`)."""
        return Shard(self.rank, self.count)

    def barrier(self) -> None:
        """Wait until every rank arrives here (no-op for one process)."""
        if self.count > 1:
            import torch.distributed as dist

            dist.barrier(group=self.group)

    def on_main(self, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0 only and hand its JSON-able result to every rank.

        When ``work`` raises on rank 0, rank 0 re-raises it and every other rank raises
        :class:`DistributedError` with the same message, so a refused run ends every rank
        with the same one-line error instead of leaving them waiting.

        Args:
            work: The work; its result must be JSON-able (a manifest, None).

        Returns:
            ``work()``'s result (on rank 0 the object itself; elsewhere its JSON copy).
        """
        if self.count == 1:
            return work()
        message: list[Any] = [None]
        result: Any = None
        failure: BaseException | None = None
        if self.is_main:
            try:
                result = work()
                message[0] = json.dumps({"ok": result})
            except BaseException as err:  # noqa: BLE001 - every rank hears of it; re-raised
                failure = err
                message[0] = json.dumps({"error": _one_line(err)})
        import torch.distributed as dist

        dist.broadcast_object_list(message, src=0, group=self.group)
        if failure is not None:
            raise failure
        answer = json.loads(message[0])
        if "error" in answer:
            raise DistributedError(f"rank 0 refused the run: {answer['error']}")
        return result if self.is_main else answer["ok"]

    def device(self, device: str) -> str:
        """The device of this rank.

        ``cuda`` becomes ``cuda:LOCAL_RANK`` when several processes share a machine (one
        GPU each); anything else is kept.

        Args:
            device: The device the user asked for.

        Returns:
            The device this process uses.
        """
        if self.count > 1 and device == "cuda":
            return f"cuda:{self.local_rank}"
        return device

    def placement(self, device: str | None, device_map: Any) -> dict[str, Any]:
        """``modprobe.load``'s placement arguments for a runner's device options.

        Args:
            device: ``--device`` (None: CUDA when available).
            device_map: ``--device-map``: a name or JSON text from the command line, or a
                dict; None to place the model on ``device``.

        Returns:
            ``{"device": ...}`` or ``{"device_map": ...}`` for :func:`modprobe.load`.

        Raises:
            ModprobeError: both given, a bad map, a device this machine lacks, or a map
                in a run of several processes (each would spread over every GPU).
        """
        from modprobe.checks import check_device
        from modprobe.loading import parse_device_map

        if device_map is None:
            return {"device": self.device(check_device(device))}
        if device is not None:
            raise ModprobeError("--device and --device-map both given: --device-map places "
                                "every layer itself; drop one")
        if self.count > 1:
            raise ModprobeError("--device-map shards one model over the GPUs, so it runs in "
                                "one process; drop it, or run one process per GPU with "
                                "--device cuda (docs/scale.md)")
        parsed = parse_device_map(device_map) if isinstance(device_map, str) else device_map
        return {"device_map": parsed}


def _one_line(err: BaseException) -> str:
    from modprobe.errors import describe

    return describe(err)


_WORLD: World | None = None


def current_world() -> World:
    """The world this process runs in, read from the launcher's environment.

    With ``WORLD_SIZE`` > 1 (torchrun, accelerate launch, or any launcher that sets
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``) the process joins a
    gloo group of all ranks on the first call (reusing the default group when one exists,
    e.g. accelerate's); otherwise it is a world of one.

    Raises:
        DistributedError: ``WORLD_SIZE`` or ``RANK`` is not an integer, or the rank is out
            of range.
    """
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    try:
        count = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise DistributedError("WORLD_SIZE, RANK and LOCAL_RANK must be integers (they are "
                               "set by torchrun or accelerate launch)") from None
    if count <= 1:
        _WORLD = World()
        return _WORLD
    if not 0 <= rank < count:
        raise DistributedError(f"RANK {rank} is not in 0..{count - 1} (WORLD_SIZE {count})")
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo", timeout=BARRIER_TIMEOUT)
        atexit.register(_close)
    group = dist.new_group(backend="gloo", timeout=BARRIER_TIMEOUT)
    _WORLD = World(rank=rank, count=count, local_rank=local_rank, group=group)
    return _WORLD


def _close() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
