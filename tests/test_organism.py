"""The bundled model organism: the shipped checkpoint and the training recipe."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import modprobe
from modprobe.adapters import Prompt
from modprobe.data.lowres import sample_lowres_item
from modprobe.organism import CHECKPOINT_DIR
from modprobe.organism.config import OrganismConfig
from modprobe.organism.sources import organism_words
from modprobe.organism.train import answer_logits, train


@pytest.fixture(scope="module")
def organism() -> modprobe.LoadedModel:
    return modprobe.load("organism", device="cpu")


def _answers(loaded: modprobe.LoadedModel, prompts: list[Prompt]) -> list[str]:
    with torch.no_grad():
        logits = answer_logits(loaded.module, loaded.encode(prompts))
    return loaded.tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())


def test_alias_resolves_to_the_shipped_checkpoint() -> None:
    assert modprobe.loading.resolve_source("organism") == str(CHECKPOINT_DIR)
    assert (CHECKPOINT_DIR / "config.json").is_file()
    assert (CHECKPOINT_DIR / "model.safetensors").is_file()


def test_checkpoint_is_small() -> None:
    total = sum(p.stat().st_size for p in CHECKPOINT_DIR.iterdir() if p.is_file())
    assert total < 8_000_000, f"checkpoint is {total / 1e6:.1f} MB"


def test_checkpoint_is_a_llava(organism: modprobe.LoadedModel) -> None:
    from transformers import LlavaForConditionalGeneration

    assert isinstance(organism.module, LlavaForConditionalGeneration)
    assert organism.adapter.family == "llava"


def test_answers_clean_vision_and_direct_text_items(organism: modprobe.LoadedModel) -> None:
    rng = np.random.default_rng(123)
    items = [sample_lowres_item(rng, 0, 0, kind="agree") for _ in range(6)]
    vision = _answers(organism, [Prompt(it.question, images=[it.image]) for it in items])
    text = _answers(organism, [Prompt(it.question, context=it.context) for it in items])
    assert vision == [it.answer_vision for it in items]
    assert text == [it.answer_text for it in items]


def test_training_log_is_shipped_beside_the_checkpoint() -> None:
    with (CHECKPOINT_DIR / "training_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {"step", "loss", "acc/vision/lv0", "acc/text/direct"} <= set(rows[0])
    assert int(rows[-1]["step"]) == OrganismConfig().steps


def test_vocabulary_covers_the_generator_texts() -> None:
    from modprobe.organism.sources import build_processor

    tokenizer = build_processor(OrganismConfig()).tokenizer
    rng = np.random.default_rng(0)
    for lt in range(6):
        item = sample_lowres_item(rng, 0, lt, kind="conflict")
        ids = tokenizer(f"{item.context}\n{item.question}")["input_ids"]
        assert tokenizer.unk_token_id not in ids, item.context
    assert {"red", "orange", "yellow", "green", "blue", "purple"} <= set(organism_words())


def _tiny_run(seed: int) -> dict[str, torch.Tensor]:
    # The shipped recipe's code path at a fraction of its size (fast on a shared CPU).
    config = dataclasses.replace(
        OrganismConfig(), seed=seed, steps=5, batch_size=4, eval_every=1000, probe_items=1,
        warmup_steps=2, vision_width=32, vision_layers=1, text_width=32, text_layers=1)
    return train(config).model.state_dict()


def test_training_is_deterministic_from_its_seed() -> None:
    first, again, other = _tiny_run(0), _tiny_run(0), _tiny_run(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_cli_trains_and_saves_a_loadable_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modprobe.organism.__main__ import main

    out = tmp_path / "organism"
    assert main(["train", "--out", str(out), "--steps", "2", "--batch-size", "2",
                 "--eval-every", "1", "--probe-items", "1", "--quiet"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    with (out / "training_log.csv").open() as handle:
        assert [row["step"] for row in csv.DictReader(handle)] == ["1", "2"]
    loaded = modprobe.load(out, device="cpu")
    assert loaded.adapter.family == "llava"
