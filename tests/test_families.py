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

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import modprobe
from modprobe.adapters import AdapterError
from modprobe.capture import CaptureTraceError, capture
from modprobe.capture.reference import sharpen_attention, user_inputs, user_reference
from modprobe.testing.families import TINY_FAMILIES, build_family, load_family
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
            spec = TINY_FAMILIES[name]
            folder = None if spec.stand_in else family_dir(name)
            cache[name] = tuple(  # type: ignore[assignment]
                sharpen_attention(load_family(name, kernel, folder=folder), spec.sharpen)
                for kernel in (spec.attn_implementation, "eager"))
        return cache[name]

    return make


RUNNABLE = [name for name, spec in TINY_FAMILIES.items() if spec.runs_upstream()]
BROKEN = [name for name, spec in TINY_FAMILIES.items() if not spec.runs_upstream()]


@pytest.fixture(params=RUNNABLE)
def tiny_family(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.slow
@pytest.mark.parametrize("name", BROKEN)
def test_upstream_broken_families_still_fail(name: str) -> None:
    """Families whose own forward fails in the installed transformers (docs/models.md).

    A transformers release that fixes the family must not turn a user's install red: the
    test then skips, saying to set the family's ``upstream_fixed_in`` (which moves it
    into the exactness matrix from that version on). Another error still fails.
    """
    import transformers

    eager = load_family(name, "eager")
    inputs = user_inputs(eager, _prompts()[1])
    try:
        with torch.no_grad():
            eager.module(**inputs)
    except Exception as err:  # noqa: BLE001 - any upstream error; the match below narrows it
        assert re.search(re.escape(TINY_FAMILIES[name].upstream_error), str(err)), err
        return
    pytest.skip(f"transformers {transformers.__version__} runs {name}: set its "
                f"upstream_fixed_in={transformers.__version__!r} in modprobe.testing.families "
                "to move it into the exactness matrix")


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
    # a row without an image batched with one that has an image (an empty image list)
    text_only = modprobe.Prompt("What color is it ?", context="It is red .")
    if not lm.adapter.mixed_batches:
        with pytest.raises(AdapterError, match="cannot batch prompts with and without images"):
            lm.encode([prompts[0], text_only])
        return
    mixed = capture(lm, [prompts[0], text_only], candidates=["red"], attention=spec.attention)
    assert mixed.spans.counts()["image"][1] == 0 < mixed.spans.counts()["image"][0]
    alone = capture(lm, [text_only], candidates=["red"], attention=spec.attention)
    assert _maxdiff(mixed.final_logits[1], alone.final_logits[0]) <= TOL
    assert _maxdiff(mixed.lens_candidate_logits[1], alone.lens_candidate_logits[0]) <= TOL


def test_refusals_say_what_to_do(family_dir) -> None:
    """Soft-capped attention under SDPA, and attention mass over cross-attention layers."""
    with pytest.raises(AdapterError, match="attn_implementation='eager'"):
        modprobe.load(family_dir("paligemma2"), dtype="float32", device="cpu")
    mllama = modprobe.load(family_dir("mllama"), dtype="float32", device="cpu")
    with pytest.raises(CaptureTraceError, match=r"cross-attend.*attention=False\)"):
        capture(mllama, _prompts()[:1])


def test_mllama_text_only_rows(family_pair) -> None:
    """Without an image, Mllama skips its cross-attention layers: their lens is the
    residual passed on, the others match the user's forward; rows with and without an
    image cannot share a batch (the model itself changes the text-only row there)."""
    lm, eager = family_pair("mllama")
    prompt = modprobe.Prompt("What color is it ?", context="It is red .")
    cap = capture(lm, [prompt], attention=False, keep_lens_logits=True)
    with torch.no_grad():
        ref, _ = user_reference(eager, [prompt])
    ran = [i for i in range(cap.lens_logits.shape[1]) if i != 1]  # layer 1 cross-attends
    assert ref.lens_logits.shape[1] == len(ran)
    assert _maxdiff(cap.lens_logits[:, ran], ref.lens_logits) <= TOL
    assert _maxdiff(cap.final_logits, ref.final_logits) <= TOL
    assert _maxdiff(cap.lens_logits[:, 1], cap.lens_logits[:, 0]) <= TOL
    with pytest.raises(AdapterError, match="cannot batch prompts with and without images"):
        lm.encode([_prompts()[1], prompt])


def test_survey_classifies_families() -> None:
    """The structural survey (meta device): adapts, lens only, refused with the reason."""
    from modprobe.testing.survey import markdown_table, survey

    rows = {r.model_type: r for r in survey(["llava", "mllama", "blip", "qwen3_5"])}
    assert rows["llava"].status == "adapts" and rows["llava"].adapter == "llava"
    assert rows["mllama"].status == "lens only" and "attention=False" in rows["mllama"].reason
    assert rows["blip"].status == "refused" and "image_token_id" in rows["blip"].reason
    # hybrid linear-attention stack: softmax attention in some layers only
    assert rows["qwen3_5"].status == "lens only"
    assert "| `mllama` |" in markdown_table(list(rows.values()))


def test_smolvlm_processor_templates_without_a_video_processor(monkeypatch, images) -> None:
    """SmolVLM's apply_chat_template reads video sampling defaults off its video processor,
    which transformers cannot build without torchvision: the image-only processor has none
    and templates (and tokenizes) images all the same. (Its model is Idefics3's, in the
    matrix; the real processor also needs the num2words package, stubbed here.)"""
    import transformers.models.smolvlm.processing_smolvlm as smolvlm_processing
    from transformers import SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    from modprobe.adapters import Adapter
    from modprobe.loading import image_only_processor_class
    from modprobe.testing.families import IDEFICS3_TEMPLATE, idefics3

    monkeypatch.setattr(smolvlm_processing, "num2words", lambda n: str(n), raising=False)
    _, reference = idefics3()
    processor = image_only_processor_class(SmolVLMProcessor)(
        image_processor=SmolVLMImageProcessorPil(size={"longest_edge": 64},
                                                 max_image_size={"longest_edge": 32}),
        tokenizer=reference.tokenizer, video_processor=None, chat_template=IDEFICS3_TEMPLATE,
        image_seq_len=4)
    prompt = modprobe.Prompt("What color is it ?", images=[images["blue_wide"]])
    content = [{"type": "image", "image": images["blue_wide"]},
               {"type": "text", "text": prompt.text}]
    mine = Adapter(family="generic:smolvlm", model_types=("smolvlm",))
    batch = mine.encode(processor, [prompt])
    theirs = processor.apply_chat_template([{"role": "user", "content": content}], tokenize=True,
                                           return_dict=True, add_generation_prompt=True,
                                           return_tensors="pt")
    assert torch.equal(batch["input_ids"], theirs["input_ids"])
    assert int((batch["input_ids"] == reference.tokenizer.convert_tokens_to_ids("<image>")).sum()) > 4


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_context_span_is_the_description(tiny_family: str, family_pair,
                                         padding_side: str) -> None:
    """The context span holds exactly the description's tokens, in every generic family."""
    lm, _ = family_pair(tiny_family)
    prompts = [*_prompts(), modprobe.Prompt("What color ?", context="It is a blue square , "
                                            "or green .", images=[noise_image(5, (32, 32))])]
    batch = lm.encode(prompts, padding_side=padding_side)
    spans = lm.spans(batch)
    for row, prompt in enumerate(prompts):
        ids = batch["input_ids"][row][spans.mask("context")[row]].tolist()
        if not prompt.context:
            assert ids == []
            continue
        assert ids == lm.tokenizer(prompt.context, add_special_tokens=False)["input_ids"]
        assert [r[0] for r in spans.ranges(row)].count("context") == 1, "one contiguous run"
