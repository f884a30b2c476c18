"""Shared fixtures: tiny random-weight models of every supported family, built once per session.

Fixtures (all session-scoped, so each family's model is built and loaded at most once):

``tiny_dir(family, seed=0) -> Path``
    Factory: the folder of a tiny model written by
    ``modprobe.testing.build_tiny(family, dir, seed)`` (model + processor + chat
    template). Treat it as read-only; copy it (``shutil.copytree``) before changing files.

``tiny_model(family, seed=0) -> modprobe.LoadedModel``
    Factory: ``modprobe.load(tiny_dir(family, seed), dtype="float32", device="cpu")``,
    cached. Shared between tests: do not modify its weights or leave hooks on it.

``family``
    Parametrized over ``FAMILIES`` (llava, llava_next, qwen2_vl, qwen2_5_vl, instructblip):
    a test that takes ``family`` runs once per family, e.g.::

        def test_forward(family, tiny_model):
            lm = tiny_model(family)

``images``
    A few small PIL images of different sizes and colors (``images["red_square"]``,
    ``images["blue_wide"]`` 48x32, ``images["green_tall"]`` 32x64, ``images["purple_big"]`` 64x64).

``llava_dir``
    The folder of the tiny LLaVA (``tiny_dir("llava")``), for runner tests.

``lowres_data``
    A low-resolution color-conflict dataset (``generate_colors``, one group, seed 3),
    generated once; read-only, like the model folders.

Use ``FAMILIES`` from ``modprobe.testing`` (re-exported here) for your own parametrization.
Tiny model shapes: see ``docs/models.md`` ("Tiny models").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from modprobe.testing import FAMILIES, build_tiny

__all__ = ["FAMILIES"]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory ``tiny_dir(family, seed=0) -> Path`` of tiny model folders, built once each."""
    built: dict[tuple[str, int], Path] = {}

    def make(family: str, seed: int = 0) -> Path:
        key = (family, seed)
        if key not in built:
            out = tmp_path_factory.mktemp(f"tiny-{family}-{seed}")
            built[key] = build_tiny(family, out, seed=seed)
        return built[key]

    return make


@pytest.fixture(scope="session")
def tiny_model(tiny_dir: Callable[..., Path]) -> Callable[..., object]:
    """Factory ``tiny_model(family, seed=0) -> LoadedModel`` (float32, CPU), loaded once each."""
    import modprobe

    loaded: dict[tuple[str, int], object] = {}

    def make(family: str, seed: int = 0) -> object:
        key = (family, seed)
        if key not in loaded:
            loaded[key] = modprobe.load(tiny_dir(family, seed), dtype="float32", device="cpu")
        return loaded[key]

    return make


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    """Each supported family in turn."""
    return request.param


@pytest.fixture(scope="session")
def images() -> dict[str, Image.Image]:
    """Small solid-color PIL images of several sizes (LLaVA-NeXT/Qwen token counts differ)."""
    return {
        "red_square": Image.new("RGB", (32, 32), (220, 20, 20)),
        "blue_wide": Image.new("RGB", (48, 32), (20, 20, 220)),
        "green_tall": Image.new("RGB", (32, 64), (20, 200, 20)),
        "purple_big": Image.new("RGB", (64, 64), (140, 20, 160)),
    }



@pytest.fixture(scope="session")
def sdpa_eager_pair(tiny_dir: Callable[..., Path]) -> Callable[[str], tuple[object, object]]:
    """Factory: ``(SDPA model, eager model)`` of one family, same weights, sharpened attention.

    These are their own copies (``sharpen_attention`` edits weights), so the shared
    ``tiny_model`` ones stay unmodified. Built once per family per session.
    """
    import modprobe
    from modprobe.capture.reference import sharpen_attention

    cache: dict[str, tuple[object, object]] = {}

    def make(family: str) -> tuple[object, object]:
        if family not in cache:
            cache[family] = tuple(  # type: ignore[assignment]
                sharpen_attention(modprobe.load(tiny_dir(family), dtype="float32", device="cpu",
                                                attn_implementation=impl))
                for impl in ("sdpa", "eager"))
        return cache[family]

    return make


@pytest.fixture
def pair(family: str, sdpa_eager_pair: Callable[[str], tuple[object, object]]) -> tuple[object, object]:
    """``(SDPA model, eager model)`` of the parametrized ``family`` (see ``sdpa_eager_pair``)."""
    return sdpa_eager_pair(family)


@pytest.fixture(scope="session")
def llava_dir(tiny_dir: Callable[..., Path]) -> Path:
    """The folder of the tiny LLaVA (seed 0), shared by the runner tests."""
    return tiny_dir("llava")


@pytest.fixture(scope="session")
def lowres_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A low-resolution color-conflict dataset (one group, seed 3), generated once."""
    from modprobe.data import generate_colors

    root = tmp_path_factory.mktemp("lowres-data")
    generate_colors(root, groups=1, seed=3, variant="lowres")
    return root
