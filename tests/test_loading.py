"""modprobe.load: aliases, folders, the offline hub, non-multimodal models, remote code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import modprobe
from modprobe import ALIASES, AdapterError, LoadedModel, ModelNotFoundError, Prompt
from modprobe.loading import resolve_source


def test_aliases_resolve_to_hub_ids() -> None:
    assert resolve_source("llava") == "llava-hf/llava-1.5-7b-hf"
    assert set(ALIASES) == {"llava", "llava-next", "qwen2-vl", "qwen2.5-vl", "instructblip"}
    assert resolve_source("someorg/somemodel") == "someorg/somemodel"


def test_unknown_alias_lists_known_ones_and_suggests_the_close_one() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        modprobe.load("lava")
    message = str(info.value)
    assert "unknown model alias 'lava'" in message
    assert "Did you mean 'llava'?" in message
    for alias in ALIASES:
        assert alias in message


def test_missing_local_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such-model"
    with pytest.raises(ModelNotFoundError, match="local model folder .* does not exist"):
        modprobe.load(missing)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        modprobe.load("./models/tiny-llava-that-is-not-here")


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="holds no config.json"):
        modprobe.load(tmp_path)


def test_folder_with_missing_weights(tiny_dir, tmp_path: Path) -> None:
    broken = shutil.copytree(tiny_dir("llava"), tmp_path / "broken")
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="could not load the model in folder"):
        modprobe.load(broken)


def test_offline_hub_says_so_and_suggests_a_local_path(monkeypatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable at import time; set the constant it derived too
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFoundError) as info:
        modprobe.load("someorg/nonexistent")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "hub could not be reached" in message
    assert "pass a local folder" in message


def test_text_only_model_is_an_adapter_error(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from modprobe.testing import llama_tokenizer

    LlamaForCausalLM(LlamaConfig(
        vocab_size=200, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1)).save_pretrained(tmp_path)
    llama_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(AdapterError, match="not an image-text-to-text model"):
        modprobe.load(tmp_path)


def test_trust_remote_code_is_false_unless_asked(monkeypatch, tiny_dir) -> None:
    import transformers

    seen: list[tuple[str, object]] = []

    def spy(owner: type, original):  # record the flag, then load for real
        def from_pretrained(*args, **kwargs):
            seen.append((owner.__name__, kwargs.get("trust_remote_code", "absent")))
            return original(*args, **kwargs)
        return from_pretrained

    for owner in (transformers.AutoProcessor, transformers.AutoModelForImageTextToText):
        monkeypatch.setattr(owner, "from_pretrained", spy(owner, owner.from_pretrained))
    modprobe.load(tiny_dir("llava"), dtype="float32")
    assert sorted(seen) == [("AutoModelForImageTextToText", False), ("AutoProcessor", False)]
    seen.clear()
    modprobe.load(tiny_dir("llava"), dtype="float32", trust_remote_code=True)
    assert sorted(seen) == [("AutoModelForImageTextToText", True), ("AutoProcessor", True)]


def test_unknown_dtype(tiny_dir) -> None:
    with pytest.raises(modprobe.ModprobeError, match="dtype 'float8' is not a dtype"):
        modprobe.load(tiny_dir("llava"), dtype="float8")


def test_loaded_model_exposes_its_parts(family, tiny_dir, tiny_model) -> None:
    lm = tiny_model(family)
    assert isinstance(lm, LoadedModel)
    assert lm.name == lm.source == str(tiny_dir(family))
    assert isinstance(lm.module, torch.nn.Module) and lm.module.config is lm.config
    assert lm.model._module is lm.module
    assert lm.device == torch.device("cpu")
    assert next(lm.module.parameters()).dtype == torch.float32
    assert lm.tokenizer is lm.processor.tokenizer
    assert not lm.module.training


def test_nnsight_trace_runs(tiny_model, images) -> None:
    lm = tiny_model("llava")
    batch = lm.encode([Prompt("What color is the circle?", images=[images["red_square"]])])
    with torch.no_grad(), lm.model.trace(**lm.adapter.model_inputs(batch, lm.module)):
        hidden = lm.adapter.decoder_layers(lm.model)[-1].output.save()
    assert hidden.shape[:2] == batch["input_ids"].shape


def test_generic_path_when_family_unknown(monkeypatch, tiny_dir, images) -> None:
    dedicated = modprobe.load(tiny_dir("llava"), dtype="float32")
    monkeypatch.setattr("modprobe.adapters.ADAPTERS", {})
    generic = modprobe.load(tiny_dir("llava"), dtype="float32")
    assert generic.adapter.family == "generic:llava"
    assert generic.adapter.layers == dedicated.adapter.layers
    prompts = [Prompt("What color is the circle?", images=[images["red_square"]]),
               Prompt("Which color?", context="It is red.", images=[images["red_square"]])]
    assert torch.equal(generic.spans(generic.encode(prompts)).codes,
                       dedicated.spans(dedicated.encode(prompts)).codes)
