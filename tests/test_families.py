"""The generic path on tiny models of image-text-to-text families without a dedicated adapter.

For every family of :data:`modprobe.testing.families.TINY_FAMILIES` (each built once per
test run), in float32 with sharpened attention, the capture of a left-padded two-row
batch is compared with the model run exactly as a user runs it: each prompt alone,
tokenized by the processor's own ``apply_chat_template(tokenize=True)``, its FULL output
fed to the model's own eager forward with ``output_attentions`` (no modprobe filtering).
Families the capture cannot handle exactly must be refused with a message that says
what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import modprobe
from modprobe.adapters import AdapterError
from modprobe.capture import CaptureTraceError, capture
from modprobe.capture.reference import sharpen_attention, user_reference
from modprobe.testing.families import TINY_FAMILIES, build_family
from modprobe.testing.images import noise_image

TOL = 1e-5


def _prompts(seed: int = 0) -> list[modprobe.Prompt]:
    """Two prompts of different lengths and image sizes, so the batch is padded."""
    return [
        modprobe.Prompt("What color is the circle ? Please answer with one word .",
                        context="The circle is red .", images=[noise_image(seed, (32, 32))]),
        modprobe.Prompt("What color is it ?", images=[noise_image(seed + 1, (64, 32))]),
    ]


def _maxdiff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.fixture(scope="session")
def family_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    built: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in built:
            built[name] = build_family(name, tmp_path_factory.mktemp(f"family-{name}"))
        return built[name]

    return make


@pytest.fixture(scope="session")
def family_pair(family_dir: Callable[[str], Path]) -> Callable[[str], tuple[Any, Any]]:
    """``(capture model, eager model)`` of a family: same weights, sharpened attention."""
    cache: dict[str, tuple[Any, Any]] = {}

    def make(name: str) -> tuple[Any, Any]:
        if name not in cache:
            impl = TINY_FAMILIES[name].attn_implementation
            cache[name] = tuple(  # type: ignore[assignment]
                sharpen_attention(modprobe.load(family_dir(name), dtype="float32", device="cpu",
                                                attn_implementation=kernel),
                                  TINY_FAMILIES[name].sharpen)
                for kernel in (impl, "eager"))
        return cache[name]

    return make


@pytest.fixture(params=list(TINY_FAMILIES))
def tiny_family(request: pytest.FixtureRequest) -> str:
    return request.param


def test_capture_equals_the_users_forward(tiny_family: str, family_pair) -> None:
    spec = TINY_FAMILIES[tiny_family]
    lm, eager = family_pair(tiny_family)
    assert lm.adapter.family == f"generic:{lm.config.model_type}", "no dedicated adapter"
    prompts = _prompts()
    batch = lm.encode(prompts)
    assert bool((batch["attention_mask"] == 0).any()), "the batch should need padding"
    spans = lm.spans(batch)
    image_id = lm.adapter.token_ids(lm.config)["image"]
    assert torch.equal(spans.mask("image"), batch["input_ids"] == image_id)
    assert all(n > 0 for n in spans.counts()["image"])

    cap = capture(lm, batch, keep_lens_logits=True, attention=spec.attention)
    with torch.no_grad():
        ref, ids = user_reference(eager, prompts)
    for row, row_ids in enumerate(ids):
        mine = batch["input_ids"][row][batch["attention_mask"][row].bool()]
        assert torch.equal(mine, row_ids), f"row {row}: token ids differ from the processor's"
    assert _maxdiff(cap.final_logits, ref.final_logits) <= TOL, "final logits != user's forward"
    assert _maxdiff(cap.lens_logits[:, -1], cap.final_logits) <= TOL, "lens != logits"
    assert _maxdiff(cap.lens_logits, ref.lens_logits) <= TOL
    if spec.attention:
        mass = cap.attention_mass
        assert ref.attention_mass is not None
        assert _maxdiff(mass, ref.attention_mass) <= TOL, "SDPA mass != eager mass"
        assert _maxdiff(mass.sum(-1), torch.ones(mass.shape[:-1])) <= TOL
        counts = cap.spans.one_hot().sum(1)
        share = counts / counts.sum(-1, keepdim=True)
        assert float((mass - share[:, None, None]).abs().max()) > 0.05, "not discriminating"
        assert float(mass[..., 0].max()) > 1e-3, "the image gets attention somewhere"
    # the image reaches the language model: other pixels, other logits
    other = lm.encode(_prompts(seed=10))
    assert _maxdiff(capture(lm, other, lens=False, attention=False).final_logits,
                    cap.final_logits) > 1e-4


def test_batch_equals_rows_alone(tiny_family: str, family_pair) -> None:
    spec = TINY_FAMILIES[tiny_family]
    lm, _ = family_pair(tiny_family)
    prompts = _prompts()
    together = capture(lm, prompts, candidates=["red", "blue"], attention=spec.attention)
    for i, prompt in enumerate(prompts):
        alone = capture(lm, [prompt], candidates=["red", "blue"], attention=spec.attention)
        names = ["final_logits", "lens_candidate_logits", "lens_entropy"]
        names += ["attention_mass"] if spec.attention else []
        for name in names:
            diff = _maxdiff(getattr(together, name)[i], getattr(alone, name)[0])
            assert diff <= TOL, f"row {i} {name} differs by {diff:.2e} when batched"


def test_refusals_say_what_to_do(family_dir) -> None:
    """Soft-capped attention under SDPA, and attention mass over cross-attention layers."""
    with pytest.raises(AdapterError, match="attn_implementation='eager'"):
        modprobe.load(family_dir("paligemma2"), dtype="float32", device="cpu")
    mllama = modprobe.load(family_dir("mllama"), dtype="float32", device="cpu")
    with pytest.raises(CaptureTraceError, match=r"cross-attend.*attention=False"):
        capture(mllama, _prompts()[:1])
