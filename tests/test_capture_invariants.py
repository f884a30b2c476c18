"""The lens follows each family's logit transform, and every capture checks it at run time.

``find_logit_transform`` reads from a model's forward which config attributes change its
logits after the unembedding; the capture then refuses, in one line, any capture whose
last-layer lens is not the model's own logits, or whose attention mass does not sum to 1.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch
import transformers
from packaging.version import Version

import modprobe
from modprobe.adapters.base import Adapter
from modprobe.adapters.logits import LogitTransform, find_logit_transform
from modprobe.capture import CaptureInvariantError, capture
from modprobe.capture.invariants import (
    check_lens_is_logits,
    check_mass_sums_to_one,
    lens_tolerance,
)
from modprobe.errors import ModprobeError

# --------------------------------------------------------------- reading the forward


class _Multiplies(torch.nn.Module):  # Cohere / Aya Vision
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(h)
        return logits * self.config.text_config.logit_scale


class _Divides(torch.nn.Module):  # Granite 4 Vision, Granite Docling
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(h)
        return logits / self.config.text_config.logits_scaling


class _MultipliesSameName(torch.nn.Module):  # HyperCLOVAX: same attribute, other direction
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(h) * self.config.text_config.logits_scaling


class _ScalesThenCaps(torch.nn.Module):  # Muse: a multiplier, then Gemma's soft cap
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(h) * self.config.text_config.output_multiplier
        cap = self.config.text_config.final_logit_softcapping
        return torch.tanh(logits / cap) * cap


class _Plain(torch.nn.Module):  # Gemma 3, Cohere 2 Vision: the config sets, forward ignores
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.lm_head(h)


_ALL = {"logit_scale": 0.25, "logits_scaling": 8.0, "output_multiplier": 2.0,
        "final_logit_softcapping": 3.0}


@pytest.mark.parametrize(("cls", "steps"), [
    (_Multiplies, (("mul", "logit_scale", 0.25),)),
    (_Divides, (("div", "logits_scaling", 8.0),)),
    (_MultipliesSameName, (("mul", "logits_scaling", 8.0),)),
    (_ScalesThenCaps, (("mul", "output_multiplier", 2.0),
                       ("softcap", "final_logit_softcapping", 3.0))),
    (_Plain, ()),
])
def test_the_forward_says_which_attributes_apply(cls: type, steps: tuple) -> None:
    """Every attribute is set in the config; only those the forward uses count."""
    transform = find_logit_transform(cls(), SimpleNamespace(**_ALL))
    assert transform.steps == steps
    z = torch.linspace(-6, 6, 13)
    expected = {_Multiplies: z * 0.25, _Divides: z / 8.0, _MultipliesSameName: z * 8.0,
                _ScalesThenCaps: torch.tanh(z * 2.0 / 3.0) * 3.0, _Plain: z}[cls]
    assert torch.equal(transform(z), expected)


def test_a_nested_language_models_forward_counts() -> None:
    """Llama 4 and InstructBLIP return the logits of a nested causal LM's forward."""
    outer = _Plain()
    outer.language_model = _Multiplies()
    config = SimpleNamespace(logit_scale=0.5)
    assert find_logit_transform(outer, config).steps == ()
    assert find_logit_transform(outer, config, outer.language_model).steps == (
        ("mul", "logit_scale", 0.5),)


_AYA_SCALES = Version(transformers.__version__) >= Version("5.25")  # 5.24 had no logit_scale


@pytest.mark.parametrize(("model_type", "attrs", "ops"), [
    ("aya_vision", {"logit_scale": 0.0625}, ("mul",) if _AYA_SCALES else ()),
    ("granite4_vision", {"logits_scaling": 8.0}, ("div",)),
    ("hyperclovax_vision_v2", {"logits_scaling": 8.0}, ("mul",)),
    ("paligemma", {"final_logit_softcapping": 30.0}, ("softcap",)),
    ("muse_glimmer", {"output_multiplier": 2.0, "final_logit_softcapping": 30.0},
     ("mul", "softcap")),
    ("gemma3", {"final_logit_softcapping": 30.0}, ()),
])
def test_installed_transformers_forwards(model_type: str, attrs: dict, ops: tuple) -> None:
    """What the installed transformers' image-text-to-text forwards do, read from them."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    name = MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES.get(model_type)
    cls = getattr(transformers, name, None) if name else None
    if cls is None:
        pytest.skip(f"transformers {transformers.__version__} has no {model_type}")
    transform = find_logit_transform(cls.__new__(cls), SimpleNamespace(**attrs))
    assert tuple(op for op, _, _ in transform.steps) == ops


_TEXT_MODELS = {
    # class name: (config class name, config overrides, expected operations)
    "CohereForCausalLM": ("CohereConfig", {"logit_scale": 0.0625}, ("mul",)),
    "GraniteForCausalLM": ("GraniteConfig", {"logits_scaling": 8.0}, ("div",)),
    "Gemma2ForCausalLM": ("Gemma2Config", {"final_logit_softcapping": 0.5}, ("softcap",)),
}


@pytest.mark.parametrize("model_name", sorted(_TEXT_MODELS))
def test_transform_makes_the_lens_the_models_logits(model_name: str) -> None:
    """Exactness on transformers' own forwards: transform(lm_head(final hidden)) == logits."""
    config_name, overrides, ops = _TEXT_MODELS[model_name]
    config = getattr(transformers, config_name)(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, head_dim=8, **overrides)
    torch.manual_seed(0)
    model = getattr(transformers, model_name)(config).eval()
    with torch.no_grad():
        out = model(torch.tensor([[1, 5, 9, 3]]), output_hidden_states=True)
        transform = find_logit_transform(model, config)
        assert tuple(op for op, _, _ in transform.steps) == ops
        lens = transform(model.lm_head(out.hidden_states[-1]))  # already normed
        assert float((lens - out.logits).abs().max()) <= 1e-5
        plain = model.lm_head(out.hidden_states[-1])
        assert float((plain - out.logits).abs().max()) > 1e-3, "the transform matters"


# --------------------------------------------------------------- the run-time check


def _prompts(images: dict) -> list[modprobe.Prompt]:
    return [modprobe.Prompt("What color is the square?", images=[images["red_square"]]),
            modprobe.Prompt("And this one, what color is it?", images=[images["blue_wide"]])]


def test_a_missed_transform_is_refused(tiny_model: Any, images: dict, monkeypatch) -> None:
    """A family whose forward scales its logits in a way the lens does not follow."""
    lm = tiny_model("llava")
    capture(lm, _prompts(images))  # fine as it is
    missed = LogitTransform((("mul", "logit_scale", 0.0625),))
    monkeypatch.setattr(Adapter, "logit_transform", lambda self, model: missed)
    for grad in (False, True):
        with pytest.raises(CaptureInvariantError) as err:
            capture(lm, _prompts(images), grad=grad)
        message = str(err.value)
        assert "\n" not in message and isinstance(err.value, ModprobeError)
        assert "llava" in message and f"transformers {transformers.__version__}" in message
        assert "logit_scale=0.0625 (mul)" in message and "differs" in message
    # lens off: nothing to compare, nothing refused
    capture(lm, _prompts(images), lens=False)


def test_attention_mass_off_one_is_refused(tiny_model: Any, images: dict, monkeypatch) -> None:
    """Mass that no longer sums to 1 over the spans (a key in no span) is refused."""
    from modprobe.capture import trace

    lm = tiny_model("llava")
    real = trace.attention_rows_to_mass

    def lose_the_text_span(probs: torch.Tensor, one_hot: torch.Tensor) -> torch.Tensor:
        mass = real(probs, one_hot)
        return torch.cat([mass[..., :-1], mass[..., -1:] * 0.5], dim=-1)

    monkeypatch.setattr(trace, "attention_rows_to_mass", lose_the_text_span)
    with pytest.raises(CaptureInvariantError, match=r"attention mass .* off by .*row, layer, head"):
        capture(lm, _prompts(images))
    capture(lm, _prompts(images), attention=False)  # no mass, nothing refused


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_captures_pass(tiny_dir: Any, images: dict, dtype: torch.dtype) -> None:
    """No false refusal where the model computes in bfloat16 or float16."""
    lm = modprobe.load(tiny_dir("llava"), dtype=str(dtype).split(".")[-1], device="cpu")
    cap = capture(lm, _prompts(images))
    assert torch.isfinite(cap.lens_entropy).all()


def test_tolerance_and_non_finite_logits() -> None:
    assert lens_tolerance(torch.float32) == 1e-4
    assert lens_tolerance(torch.bfloat16) == pytest.approx(0.03125)
    logits = torch.tensor([[1.0, -2.0, float("nan")], [float("inf"), 0.5, 0.0]])
    check_lens_is_logits(logits.clone(), logits, "x")  # the model's own NaN is not the lens's
    with pytest.raises(CaptureInvariantError, match="differs"):
        check_lens_is_logits(logits.nan_to_num(0.0), logits, "x")
    with pytest.raises(CaptureInvariantError, match="of the largest logit"):
        check_lens_is_logits(logits * 1.01, logits, "x")
    mass = torch.full((1, 2, 3, 4), 0.25)
    check_mass_sums_to_one(mass, "x", seq_len=10)
    mass[0, 1, 2] = float("nan")  # a model whose own activations went NaN
    check_mass_sums_to_one(mass, "x", seq_len=10)
    mass[0, 0, 1, 0] = 0.2
    with pytest.raises(CaptureInvariantError, match=r"off by 0.05 .*\[0, 0, 1\]"):
        check_mass_sums_to_one(mass, "x", seq_len=10)
