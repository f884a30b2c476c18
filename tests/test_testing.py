"""modprobe.testing: the offline tokenizer and the tiny models of every family."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from modprobe.testing import (
    COLOR_WORDS,
    FAMILIES,
    build_llava_processor,
    build_tiny,
    tiny_config,
    word_level_tokenizer,
)
from modprobe.testing.__main__ import main
from modprobe.testing.tiny import TEXT_DEFAULTS, tiny_tokenizer

# ----------------------------------------------------------------------------- tokenizer


def test_word_level_tokenizer_single_token_words_and_round_trip(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok = word_level_tokenizer(
        ["What", "color", "is", "it", "?", *COLOR_WORDS], ["<s>", "<pad>", "<image>"],
        bos_token="<s>", pad_token="<pad>", add_bos=True)
    assert tok.convert_ids_to_tokens(tok("What color is it?").input_ids) == [
        "<s>", "What", "color", "is", "it", "?"]
    for word in COLOR_WORDS:  # one token, with or without a leading space
        assert tok.encode(word, add_special_tokens=False) == tok.encode(
            f" {word}", add_special_tokens=False) == [tok.convert_tokens_to_ids(word)]
    assert tok.encode("<image><image>zebra", add_special_tokens=False) == [
        tok.convert_tokens_to_ids("<image>")] * 2 + [tok.unk_token_id]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("What color is <image> red?").input_ids == tok("What color is <image> red?").input_ids
    assert again.padding_side == "left" and again.pad_token == "<pad>"


def test_word_level_tokenizer_rejects_roles_outside_special_tokens() -> None:
    with pytest.raises(ValueError, match="pad_token '<pad>' must be one of special_tokens"):
        word_level_tokenizer(["a"], ["<s>"], pad_token="<pad>")


def test_tiny_vocabularies_are_small_with_color_words(family) -> None:
    tok = tiny_tokenizer(family)
    assert 100 < len(tok) < 400
    for word in (*COLOR_WORDS, "circle", "square", "What", "color"):
        assert tok.convert_tokens_to_ids(word) != tok.unk_token_id


# ----------------------------------------------------------------------------- tiny models


def test_tiny_configs_shapes(family) -> None:
    config = tiny_config(family)
    text = config.text_config
    assert text.hidden_size == 64 and text.num_hidden_layers == 3
    assert (text.num_attention_heads, text.num_key_value_heads) == (4, 2)
    assert text.vocab_size == len(tiny_tokenizer(family))
    assert config.image_token_id == tiny_tokenizer(family).convert_tokens_to_ids(
        "<|image_pad|>" if family.startswith("qwen") else "<image>")


def test_tiny_config_overrides_and_errors() -> None:
    assert tiny_config("llava", num_hidden_layers=4).text_config.num_hidden_layers == 4
    assert tiny_config("qwen2_vl", hidden_size=96).vision_config.hidden_size == 96
    with pytest.raises(ValueError, match="unknown tiny-model override"):
        tiny_config("llava", hidden_sise=64)
    with pytest.raises(ValueError, match="no tiny model for family 'gpt2'"):
        tiny_config("gpt2")


def test_build_is_seeded(tmp_path: Path) -> None:
    weights = [load_file(build_tiny("llava", tmp_path / name, seed=seed) / "model.safetensors")
               for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    assert weights[0].keys() == weights[2].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])


def test_tiny_folders_hold_model_and_processor(family, tiny_dir) -> None:
    folder = tiny_dir(family)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json"):
        assert (folder / name).is_file(), name
    has_template = (folder / "chat_template.jinja").is_file()
    assert has_template == (family != "instructblip")
    if family == "instructblip":
        assert (folder / "qformer_tokenizer" / "tokenizer.json").is_file()


def test_tiny_forward_is_shaped(family, tiny_model, images) -> None:
    from modprobe import Prompt

    lm = tiny_model(family)
    batch = lm.encode([Prompt("What color is the circle?", images=[images["red_square"]])])
    inputs = lm.adapter.model_inputs(batch, lm.module)
    with torch.no_grad():
        logits = lm.module(**inputs).logits
    assert logits.shape == (*batch["input_ids"].shape, lm.config.text_config.vocab_size)
    assert torch.isfinite(logits).all()


def test_build_llava_processor_token_count(images) -> None:
    from modprobe.testing import llama_tokenizer

    processor = build_llava_processor(llama_tokenizer(), image_size=48, patch_size=8)
    batch = processor(text=["<image> red"], images=[images["blue_wide"]], return_tensors="pt")
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_id).sum() == (48 // 8) ** 2
    assert batch["pixel_values"].shape == (1, 3, 48, 48)


def test_cli_writes_a_loadable_model(tmp_path: Path, capsys) -> None:
    import modprobe

    assert main(["tiny", "llava", "--out", str(tmp_path / "m"), "--seed", "3", "--layers", "2"]) == 0
    assert "wrote a tiny llava model" in capsys.readouterr().out
    lm = modprobe.load(tmp_path / "m", dtype="float32")
    assert lm.adapter.num_layers(lm.model) == 2
    assert TEXT_DEFAULTS["num_hidden_layers"] == 3  # the CLI flag did not leak into defaults


def test_cli_rejects_unknown_family(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tiny", "gpt2", "--out", str(tmp_path)]) == 2  # argparse's usage error
    assert "invalid choice: 'gpt2'" in capsys.readouterr().err


def test_families_constant() -> None:
    assert FAMILIES == ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "instructblip")
