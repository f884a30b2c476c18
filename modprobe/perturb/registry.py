"""The perturbation registry: names, the modality each perturbs, and :func:`perturb`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modprobe.data.tasks import TaskItem, seeded_rng
from modprobe.errors import ModprobeError

#: What a perturbation function receives: the item, a numpy Generator seeded from
#: (seed, perturbation name, item id), and the caller's options.
PerturbFn = Callable[..., TaskItem]
#: The modalities a perturbation can change.
MODALITIES: tuple[str, ...] = ("text", "image")


class PerturbationError(ModprobeError, ValueError):
    """An unknown perturbation, bad options, or an item it cannot perturb."""


@dataclass(frozen=True)
class Perturbation:
    """One registered perturbation.

    Attributes:
        name: Short name (``"MD"``), as given to :func:`perturb` and ``--perturb``.
        modality: ``"text"`` or ``"image"``: the modality it changes (always the
            task-irrelevant one: text for image-heavy items, image for text-heavy ones).
        apply: ``apply(item, rng, **options) -> TaskItem``; must depend on nothing but its
            arguments (no global random state, no clock), so the same seed gives the same
            bytes.
        description: One line for listings.
        check: Optional ``check(**options)`` raising :class:`PerturbationError` on bad
            options before anything runs (e.g. an RI folder without images).
    """

    name: str
    modality: str
    apply: PerturbFn
    description: str = ""
    check: Callable[..., None] | None = None

    @property
    def span(self) -> str:
        """The prompt span the perturbation changes.

        ``"context"`` (the description's tokens) for text perturbations, ``"image"`` for
        image ones.
        """
        return "context" if self.modality == "text" else "image"


_REGISTRY: dict[str, Perturbation] = {}


def register_perturbation(name: str, modality: str, apply: PerturbFn, description: str = "",
                          check: Callable[..., None] | None = None,
                          overwrite: bool = False) -> Perturbation:
    """Add a perturbation under ``name`` (usable by :func:`perturb` and the runner).

    Args:
        name: Its name (letters, digits, ``_`` and ``-``; no commas).
        modality: ``"text"`` or ``"image"``.
        apply: ``apply(item, rng, **options) -> TaskItem``: return a copy of ``item`` with
            the modality changed (``item.replaced(context=...)`` or
            ``item.replaced(image=...)``), drawing randomness only from ``rng``.
        description: One line for listings.
        check: Optional validator of the options.
        overwrite: Replace an existing perturbation of that name.

    Returns:
        The registered :class:`Perturbation`.
    """
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise PerturbationError(f"bad perturbation name {name!r}: use letters, digits, _ or -")
    if name == "clean":
        raise PerturbationError("'clean' names the unperturbed condition; choose another name")
    if modality not in MODALITIES:
        raise PerturbationError(f"modality must be text or image, got {modality!r}")
    if name in _REGISTRY and not overwrite:
        raise PerturbationError(f"perturbation {name!r} exists; pass overwrite=True to replace it")
    entry = Perturbation(name, modality, apply, description, check)
    _REGISTRY[name] = entry
    return entry


def unregister_perturbation(name: str) -> None:
    """Remove a registered perturbation (e.g. one a test or notebook added)."""
    get_perturbation(name)
    del _REGISTRY[name]


def perturbed_span(name: str) -> str:
    """The span axis entry a perturbation changes.

    ``context`` (the description's tokens) for text perturbations once the span axis has
    it, else ``text``; ``image`` for image perturbations.

    Args:
        name: A registered perturbation.

    Returns:
        A name of :data:`modprobe.spans.SPAN_NAMES`.
    """
    from modprobe.spans import SPAN_NAMES

    span = get_perturbation(name).span
    return span if span in SPAN_NAMES else "text"


def get_perturbation(name: str) -> Perturbation:
    """The registered perturbation ``name`` (error listing the known ones otherwise)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PerturbationError(f"unknown perturbation {name!r}; known: "
                                f"{', '.join(_REGISTRY)}") from None


def perturbations(modality: str | None = None) -> dict[str, str]:
    """``{name: modality}`` of every registered perturbation (optionally one modality's)."""
    return {n: p.modality for n, p in _REGISTRY.items() if modality in (None, p.modality)}


def canonical_name(name: str) -> str:
    """The registered spelling of a perturbation name, case aside (``md`` -> ``MD``).

    Args:
        name: A perturbation name as a user typed it.

    Returns:
        The registered name, or ``name`` stripped when none matches (an unknown name is
        refused where it is used).
    """
    key = name.strip().casefold()
    return next((known for known in _REGISTRY if known.casefold() == key), name.strip())


def perturbation_names(names: Sequence[str], option: str = "--perturb") -> list[str]:
    """The perturbations to run, each in its registered spelling, once.

    Args:
        names: The names given.
        option: The option they came from, named in the error.

    Returns:
        The registered names, in the order given.

    Raises:
        PerturbationError: a name given twice (``MD,MD`` or ``MD,md``).
    """
    canonical = [canonical_name(name) for name in names]
    twice = sorted({name for name in canonical if canonical.count(name) > 1})
    if twice:
        raise PerturbationError(f"{option} names {', '.join(twice)} more than once; name each "
                                "perturbation once (its rows would be counted twice)")
    return canonical


def check_perturbation(name: str, **options: Any) -> Perturbation:
    """Look ``name`` up and validate its options, without perturbing anything."""
    entry = get_perturbation(name)
    accepted = _accepted(entry, options)
    if entry.check is not None:
        entry.check(**accepted)
    return entry


def check_items_perturbable(items: Sequence[TaskItem], names: Sequence[str], seed: int = 0,
                            options: Callable[[str], Mapping[str, Any]] | None = None) -> None:
    """Apply each text perturbation among ``names`` to every item it fits.

    A perturbation that cannot be made (UF asked for more facts than the bank has, MD
    with no wrong option to name) is then refused before a run starts, not after its
    folder exists. Image
    perturbations are left out: they draw pixels at the model's size and fail for no
    item (their options are checked by :func:`check_perturbation`). Milliseconds per
    thousand items.

    Args:
        items: The clean items.
        names: The perturbations of the run.
        seed: The run's seed.
        options: ``options(name)``: the options the run gives perturbation ``name``.

    Raises:
        PerturbationError: naming the item and the perturbation.
    """
    text = [name for name in names if get_perturbation(name).modality == "text"]
    for item in items:
        for name in applicable(item, text):
            perturb(item, name, seed=seed, **(options(name) if options else {}))


def perturb(item: TaskItem, name: str, seed: int = 0, **options: Any) -> TaskItem:
    """Apply perturbation ``name`` to ``item``: a pure function of (item, seed, options).

    The random stream is seeded from ``(seed, name, item.id)``, so two items get
    different noise, and the same call gives the same bytes in any process.

    Args:
        item: The clean item.
        name: A registered perturbation (:func:`perturbations` lists them).
        seed: The seed.
        **options: The perturbation's options (``sentences=3`` for UF, ``size=(w, h)``
            for image perturbations, ``folder=`` for RI, ...).

    Returns:
        A new :class:`TaskItem` (same id, gold and relevant modality) whose
        ``perturbation`` is ``name``.

    Raises:
        PerturbationError: unknown name, bad options, or a perturbation of the item's
            relevant modality (interference perturbs only the irrelevant one).
    """
    entry = check_perturbation(name, **options)
    if entry.modality == item.relevant:
        raise PerturbationError(
            f"{name} perturbs the {entry.modality}, but {entry.modality} is the relevant "
            f"modality of item {item.id!r}; interference perturbs only the irrelevant one "
            f"(for this item: {', '.join(perturbations(_other(item.relevant)))})")
    out = entry.apply(item, seeded_rng(seed, "perturb", name, item.id),
                      **_accepted(entry, options))
    return out.replaced(perturbation=name)


#: Options every perturbation takes; one that has no use for it ignores it (so a caller
#: can pass ``size=`` to all of them).
SHARED_OPTIONS: tuple[str, ...] = ("size",)


def _accepted(entry: Perturbation, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``entry.apply`` takes; an unknown one is an error naming the known."""
    parameters = inspect.signature(entry.apply).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    known = [n for n in list(parameters)[2:]]
    unknown = [k for k in options if k not in known and k not in SHARED_OPTIONS]
    if unknown:
        raise PerturbationError(f"{entry.name} has no option {unknown[0]!r}; its options: "
                                f"{', '.join(known) or 'none'}")
    return {k: v for k, v in options.items() if k in known}


def applicable(item: TaskItem, names: Mapping[str, Any] | list[str] | None = None) -> list[str]:
    """The perturbations that change ``item``'s irrelevant modality.

    Args:
        item: The task item (its ``relevant`` modality).
        names: The perturbations to choose from (default: every registered one).

    Returns:
        The names, in the order given.
    """
    chosen = list(names) if names is not None else list(_REGISTRY)
    return [n for n in chosen if get_perturbation(n).modality != item.relevant]


def _other(relevant: str) -> str:
    return "text" if relevant == "image" else "image"


def draw_seeds(seed: int, draws: int) -> list[int]:
    """The seeds of ``draws`` perturbation draws of a run seeded ``seed``.

    Draw 0 uses ``seed`` itself (so one draw is the single-seed run); draw r > 0 uses a
    seed hashed from ``(seed, r)`` (SHA-256, the same in every process), so runs with
    neighbouring seeds do not share draws.

    Args:
        seed: The run's seed.
        draws: How many draws (at least 1).

    Returns:
        One seed per draw.
    """
    if draws < 1:
        raise PerturbationError(f"--draws must be at least 1, got {draws}")
    seeds = [int(seed)]
    for r in range(1, draws):
        seeds.append(int(seeded_rng(seed, "draw", r).integers(0, 2**31 - 1)))
    return seeds
