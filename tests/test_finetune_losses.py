"""modprobe.finetune.losses: consistency divergences against scipy, calibration formulas,
and the calibration gradient against eager attention weights."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax
from scipy.stats import entropy

import modprobe
from modprobe.capture import capture
from modprobe.capture.reference import eager_reference
from modprobe.finetune.losses import attention_calibration_loss, consistency_loss
from modprobe.spans import SPAN_NAMES
from modprobe.testing.images import noise_image


def _logits(seed: int, batch: int = 6, vocab: int = 40, scale: float = 3.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, vocab, generator=gen, dtype=torch.float64) * scale


def _scipy_js(clean: torch.Tensor, perturbed: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean over rows of the textbook JS divergence, computed by scipy (natural log)."""
    p = softmax(clean.numpy() / temperature, axis=-1)
    q = softmax(perturbed.numpy() / temperature, axis=-1)
    # scipy returns the Jensen-Shannon *distance*, the square root of the divergence
    return float(np.mean([jensenshannon(a, b) ** 2 for a, b in zip(p, q)]))


def _public_code_js(clean: torch.Tensor, perturbed: torch.Tensor) -> float:
    """The interference paper's released "JS" term, as docs/science.md describes it.

    KL(M || P) and KL(M || Q) halves (the wrong direction for JS), with a batch reduction
    that sums one side and averages the other.
    """
    log_p, log_q = F.log_softmax(clean, -1), F.log_softmax(perturbed, -1)
    m = 0.5 * (log_p.exp() + log_q.exp())
    return float(0.5 * F.kl_div(log_p, m, reduction="sum")
                 + 0.5 * F.kl_div(log_q, m, reduction="batchmean"))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_js_is_the_textbook_divergence(seed: int, temperature: float) -> None:
    clean, perturbed = _logits(seed), _logits(seed + 100)
    ours = float(consistency_loss(clean, perturbed, kind="js", temperature=temperature))
    assert ours == pytest.approx(_scipy_js(clean, perturbed, temperature), rel=1e-5, abs=1e-7)


def test_js_is_symmetric_and_at_most_ln2() -> None:
    clean, perturbed = _logits(3), _logits(4)
    forward = consistency_loss(clean, perturbed, kind="js")
    backward = consistency_loss(perturbed, clean, kind="js")
    assert float(forward) == pytest.approx(float(backward), rel=1e-6)
    assert 0 < float(forward) <= math.log(2)
    # disjoint, nearly one-hot distributions approach the bound ln 2 from below
    far = torch.full((2, 10), -60.0, dtype=torch.float64)
    near = far.clone()
    far[:, 0], near[:, 1] = 60.0, 60.0
    extreme = float(consistency_loss(far, near, kind="js"))
    assert extreme <= math.log(2) + 1e-9
    assert extreme == pytest.approx(math.log(2), abs=1e-6)
    assert float(consistency_loss(far, far, kind="js")) == pytest.approx(0.0, abs=1e-9)


def test_the_public_codes_js_is_not_js() -> None:
    """A test that tells the released formula from JS: it fails on the wrong one."""
    clean, perturbed = _logits(5), _logits(6)
    truth = _scipy_js(clean, perturbed)
    assert float(consistency_loss(clean, perturbed, kind="js")) == pytest.approx(truth, rel=1e-5)
    assert abs(_public_code_js(clean, perturbed) - truth) > 0.1 * truth


def test_kl_direction_and_stop_gradient() -> None:
    clean, perturbed = _logits(7), _logits(8)
    p = softmax(clean.numpy(), axis=-1)
    q = softmax(perturbed.numpy(), axis=-1)
    clean_to_perturbed = float(np.mean([entropy(a, b) for a, b in zip(p, q)]))  # KL(P || Q)
    perturbed_to_clean = float(np.mean([entropy(b, a) for a, b in zip(p, q)]))
    ours = float(consistency_loss(clean, perturbed, kind="kl"))
    assert ours == pytest.approx(clean_to_perturbed, rel=1e-6)
    assert abs(ours - perturbed_to_clean) > 0.05 * ours

    clean_leaf = clean.clone().requires_grad_(True)
    perturbed_leaf = perturbed.clone().requires_grad_(True)
    consistency_loss(clean_leaf, perturbed_leaf, kind="kl").backward()
    assert clean_leaf.grad is None  # the clean side is the target: no gradient
    assert float(perturbed_leaf.grad.abs().max()) > 0
    # JS sends gradients into both sides
    clean_leaf.grad = perturbed_leaf.grad = None
    consistency_loss(clean_leaf, perturbed_leaf, kind="js").backward()
    assert float(clean_leaf.grad.abs().max()) > 0 and float(perturbed_leaf.grad.abs().max()) > 0


def test_consistency_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="kind"):
        consistency_loss(_logits(0), _logits(1), kind="jsd")
    with pytest.raises(ValueError, match="match"):
        consistency_loss(_logits(0), _logits(1, vocab=41))
    with pytest.raises(ValueError, match="temperature"):
        consistency_loss(_logits(0), _logits(1), temperature=0.0)


# --------------------------------------------------------------------------- calibration

def _mass(seed: int, batch: int = 3, layers: int = 4, heads: int = 2) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    raw = torch.rand(batch, layers, heads, len(SPAN_NAMES), generator=gen, dtype=torch.float64)
    return raw / raw.sum(-1, keepdim=True)


def test_calibration_formulas_by_hand() -> None:
    mass = _mass(0)
    img, txt = SPAN_NAMES.index("image"), SPAN_NAMES.index("text")
    relevant = ["image", "text", "image"]
    rel = torch.tensor([img, txt, img])
    rows = torch.arange(3)

    # -log mass of the relevant span, mean over rows, layers, heads
    expected = -mass[rows, :, :, rel].log().mean()
    got = attention_calibration_loss(mass, relevant, kind="neg_log_mass")
    assert float(got) == pytest.approx(float(expected), rel=1e-6)

    # cross-entropy of the distribution renormalised over image and text
    share = mass[..., [img, txt]] / mass[..., [img, txt]].sum(-1, keepdim=True)
    which = torch.tensor([0, 1, 0])
    expected = -share[rows, :, :, which].log().mean()
    got = attention_calibration_loss(mass, relevant, kind="cross_entropy", over=["image", "text"])
    assert float(got) == pytest.approx(float(expected), rel=1e-6)

    # margin: relu(margin - (p_relevant - p_other)) with two spans in `over`
    lead = share[rows, :, :, which] - share[rows, :, :, 1 - which]
    expected = torch.relu(0.3 - lead).mean()
    got = attention_calibration_loss(mass, relevant, kind="margin", over=["image", "text"], margin=0.3)
    assert float(got) == pytest.approx(float(expected), rel=1e-6)

    # layer and head selection, weight
    expected = -mass[rows][:, [1, 3]][:, :, [0]][torch.arange(3), ..., rel].log().mean()
    got = attention_calibration_loss(mass, relevant, layers=[1, -1], heads=[0],
                                     kind="neg_log_mass", weight=2.0)
    assert float(got) == pytest.approx(2.0 * float(expected), rel=1e-6)


def test_calibration_distribution_target_and_minimum() -> None:
    mass = _mass(1)
    target = torch.zeros(3, len(SPAN_NAMES), dtype=torch.float64)
    target[:, SPAN_NAMES.index("image")] = 0.25
    target[:, SPAN_NAMES.index("text")] = 0.75
    # cross-entropy against a distribution is minimal (= its entropy) when the
    # renormalised mass equals it
    matched = torch.zeros_like(mass)
    matched[..., SPAN_NAMES.index("image")] = 0.25
    matched[..., SPAN_NAMES.index("text")] = 0.75
    best = attention_calibration_loss(matched, target, over=["image", "text"])
    entropy_of_target = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert float(best) == pytest.approx(entropy_of_target, rel=1e-6)
    assert float(attention_calibration_loss(mass, target, over=["image", "text"])) > float(best)


def test_calibration_single_content_span_is_exactly_zero_even_for_tiny_mass() -> None:
    # A row whose only content span is the relevant one: share 1, loss exactly 0, also
    # for heads whose content mass is below 1e-12 (a 1e-12 floor gave share m/1e-12 < 1).
    img, txt = SPAN_NAMES.index("image"), SPAN_NAMES.index("text")
    mass = torch.zeros(2, 1, 3, len(SPAN_NAMES))
    mass[..., img] = torch.tensor([0.3, 1e-13, 1e-20])
    mass[..., txt] = 1 - mass[..., img]
    for kind in ("cross_entropy", "margin"):
        got = attention_calibration_loss(mass, "image", kind=kind)
        assert float(got) == 0.0


def test_calibration_rejects_bad_input() -> None:
    mass = _mass(2)
    with pytest.raises(ValueError, match="unknown span 'imgae'"):
        attention_calibration_loss(mass, "imgae")
    with pytest.raises(ValueError, match="layers .* out of range"):
        attention_calibration_loss(mass, "image", layers=[4])
    with pytest.raises(ValueError, match="heads .* out of range"):
        attention_calibration_loss(mass, "image", heads=[-3])
    with pytest.raises(ValueError, match="3 rows"):
        attention_calibration_loss(mass, ["image", "text"])
    with pytest.raises(ValueError, match="kind"):
        attention_calibration_loss(mass, "image", kind="kl")
    soft = torch.full((3, len(SPAN_NAMES)), 1.0 / len(SPAN_NAMES))
    with pytest.raises(ValueError, match="margin"):
        attention_calibration_loss(mass, soft, kind="margin", over=list(SPAN_NAMES))
    with pytest.raises(ValueError, match="leaves out"):
        attention_calibration_loss(mass, "text", over=["image"])


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
@pytest.mark.parametrize("kind", ["cross_entropy", "neg_log_mass", "margin"])
@pytest.mark.parametrize("source", ["mass", "log_mass"])
def test_calibration_gradient_matches_eager_attention(pair: tuple[Any, Any], kind: str,
                                                      source: str) -> None:
    """The loss on the capture's SDPA-side mass (or on its log-masses computed from the
    scores, what training uses) has the gradient of the same loss built from
    transformers' eager ``output_attentions`` (float32)."""
    lm, eager = pair
    prompts = [
        modprobe.Prompt("What color is the circle ?", context="The circle is red .",
                        images=[noise_image(0, (32, 32))]),
        modprobe.Prompt("What color is it ?", context="It is blue .",
                        images=[noise_image(1, (64, 32))]),
    ]
    batch = lm.encode(prompts)
    n_layers = lm.adapter.num_layers(lm.module)
    layers = [0, n_layers - 1]
    options = {"target": ["image", "text"], "layers": layers, "heads": [0, 2], "kind": kind,
                   "over": ["image", "text"], "margin": 0.9}

    def q_weights(loaded: Any) -> list[torch.Tensor]:
        return [loaded.adapter.attention_module(loaded.module, i).q_proj.weight for i in layers]

    cap = capture(lm, batch, grad=True, lens=False)
    if source == "mass":
        loss = attention_calibration_loss(cap.attention_mass, **options)
    else:
        loss = attention_calibration_loss(None, log_mass=cap.attention_log_mass, **options)
    grads = torch.autograd.grad(loss, q_weights(lm))
    ref = eager_reference(eager, batch, cap.spans, cap.answer_positions)
    ref_loss = attention_calibration_loss(ref.attention_mass, **options)
    ref_grads = torch.autograd.grad(ref_loss, q_weights(eager))

    assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), rel=1e-5)
    for layer, g, r in zip(layers, grads, ref_grads, strict=True):
        scale = float(r.abs().max())
        assert scale > 1e-4, f"layer {layer}: the reference gradient vanishes"
        diff = float((g - r).abs().max())
        assert diff <= 1e-5 * max(1.0, scale), f"layer {layer}: {diff:.2e} (scale {scale:.2e})"


# --------------------------------------------------------------------------- log space
def _scores_with_tiny_span(gap: float, keys: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """`1 1 keys` scores and `1 keys span` one-hot: keys 0-3 image, 4-7 context, 8-11 text;
    the context keys (the relevant span) score ``gap`` below the others."""
    codes = torch.tensor([SPAN_NAMES.index(s) for s in ["image"] * 4 + ["context"] * 4
                          + ["text"] * 4])
    one_hot = F.one_hot(codes, len(SPAN_NAMES)).float().unsqueeze(0)
    scores = torch.linspace(-1.0, 1.0, keys).view(1, 1, keys)
    scores = scores - gap * (codes == SPAN_NAMES.index("context")).float()
    return scores.requires_grad_(True), one_hot


def test_log_mass_is_the_log_of_the_mass_and_stays_finite_where_it_underflows() -> None:
    from modprobe.capture.attention import attention_rows_to_mass, attention_scores_to_log_mass

    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, len(SPAN_NAMES), (3, 20), generator=gen)
    codes[:, 0] = SPAN_NAMES.index("text")
    one_hot = F.one_hot(codes, len(SPAN_NAMES)).float()
    one_hot[:, :, SPAN_NAMES.index("video")] = 0  # a span with no token: mass 0
    scores = torch.randn(3, 4, 20, generator=gen) * 3
    mass = attention_rows_to_mass(torch.softmax(scores, -1), one_hot)
    log_mass = attention_scores_to_log_mass(scores, one_hot)
    present = mass > 0
    assert torch.allclose(log_mass[present], mass[present].log(), atol=1e-5)
    assert bool((log_mass[~present] == torch.finfo(torch.float32).min).all())
    tiny, tiny_hot = _scores_with_tiny_span(200.0)  # context mass e^-200: 0 in float32
    log_tiny = attention_scores_to_log_mass(tiny, tiny_hot)[0, 0, SPAN_NAMES.index("context")]
    assert float(log_tiny.detach()) == pytest.approx(-200.0 + float(torch.linspace(-1, 1, 12)[4:8].logsumexp(0))
                                            - float(tiny.detach()[0, 0].logsumexp(0)), abs=1e-3)


@pytest.mark.parametrize("gap", [69.0, 200.0])  # context mass about 1e-30, and e^-200 (0.0)
@pytest.mark.parametrize("kind", ["cross_entropy", "neg_log_mass"])
def test_calibration_gradient_at_tiny_mass_is_full_size_and_points_to_the_span(
        gap: float, kind: str) -> None:
    """A head that gives the relevant span almost nothing is pushed toward it with a
    gradient of size about 1 (docs/finetune_losses.md): descent raises the relevant keys'
    scores and lowers the others'. The floored mass (what the loss used before) gives
    exactly zero gradient there."""
    from modprobe.capture.attention import attention_rows_to_mass, attention_scores_to_log_mass

    scores, one_hot = _scores_with_tiny_span(gap)
    log_mass = attention_scores_to_log_mass(scores, one_hot).unsqueeze(1)  # b l h s
    loss = attention_calibration_loss(None, "context", log_mass=log_mass, kind=kind)
    (grad,) = torch.autograd.grad(loss, scores)
    relevant, others = grad[0, 0, 4:8], torch.cat([grad[0, 0, :4], grad[0, 0, 8:]])
    assert float(loss.detach()) > gap - 5
    assert bool((relevant < 0).all()) and float(relevant.sum()) == pytest.approx(-1.0, abs=1e-5)
    if kind == "cross_entropy":  # the share among content spans: the text keys stay out
        assert bool((grad[0, 0, :4] > 0).all()) and bool((grad[0, 0, 8:] == 0).all())
    else:
        assert bool((others > 0).all())
    assert float(grad.sum()) == pytest.approx(0.0, abs=1e-5)  # softmax: shift-invariant

    old_scores = scores.detach().requires_grad_(True)
    mass = attention_rows_to_mass(torch.softmax(old_scores, -1), one_hot).unsqueeze(1)
    old = -mass[..., SPAN_NAMES.index("context")].clamp_min(1e-12).log().mean()
    (old_grad,) = torch.autograd.grad(old, old_scores)
    assert float(old_grad.abs().max()) == 0.0  # the case the log-space loss removes


def test_calibration_on_the_organism_moves_every_head_the_floor_froze() -> None:
    """On the base organism, the (row, layer, head) entries whose relevant mass is below
    the old 1e-12 floor now send a gradient into their layer's query weights."""
    from modprobe.finetune.data import relevant_span
    from modprobe.finetune.world import world_items

    lm = modprobe.load("organism", device="cpu")
    rows = [it for it in world_items(lm, seed=0, groups=2) if it.relevant == "text"][:4]
    cap = capture(lm, [it.prompt() for it in rows], grad=True, lens=False, top_k=1)
    assert cap.attention_mass is not None and cap.attention_log_mass is not None
    rel = SPAN_NAMES.index(relevant_span(rows[0]))
    frozen = cap.attention_mass[..., rel].detach() < 1e-12
    assert int(frozen.sum()) > 0, "the organism has no head below the old floor"
    layers = sorted({int(i) for i in frozen.nonzero()[:, 1]})
    weights = [lm.adapter.attention_module(lm.module, i).q_proj.weight for i in layers]
    new = -(cap.attention_log_mass[..., rel] * frozen).sum()
    old = -(cap.attention_mass[..., rel].clamp_min(1e-12).log() * frozen).sum()
    for layer, g_new, g_old in zip(layers, torch.autograd.grad(new, weights, retain_graph=True),
                                   torch.autograd.grad(old, weights), strict=True):
        assert float(g_new.norm()) > 1e-3, f"layer {layer}: no gradient from frozen heads"
        assert float(g_old.norm()) == 0.0
