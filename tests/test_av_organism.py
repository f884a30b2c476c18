"""The bundled audio-visual organism: the shipped checkpoint and its training recipe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import modprobe
from modprobe.loading import LOCAL_ALIASES
from modprobe.organism.__main__ import main
from modprobe.organism.av import AVOrganismConfig, clip_item, probe_accuracy, train_av

CHECKPOINT = LOCAL_ALIASES["av-organism"]
#: A generator seed neither training (7_000_001) nor the shipped probe sets used.
UNSEEN_SEED = 424_242


@pytest.fixture(scope="module")
def av_organism() -> modprobe.LoadedModel:
    return modprobe.load("av-organism", device="cpu")


def test_alias_resolves_to_a_small_shipped_checkpoint() -> None:
    assert modprobe.loading.resolve_source("av-organism") == str(CHECKPOINT)
    assert (CHECKPOINT / "model.safetensors").is_file()
    assert (CHECKPOINT / "training_log.csv").is_file()
    total = sum(p.stat().st_size for p in CHECKPOINT.iterdir() if p.is_file())
    assert total < 4_000_000, f"checkpoint is {total / 1e6:.1f} MB"


def test_checkpoint_is_an_omni_thinker(av_organism: modprobe.LoadedModel) -> None:
    assert av_organism.config.model_type == "qwen2_5_omni_thinker"


@pytest.mark.parametrize("condition,ask", [("audio_removed", "visual"),
                                          ("frames_zeroed", "audio")])
def test_above_chance_on_unseen_unimodal_clips(av_organism: modprobe.LoadedModel,
                                               condition: str, ask: str) -> None:
    # Chance is 1/4; 12 of 16 right by chance has probability below 1e-4.
    items = [clip_item(UNSEEN_SEED, i, AVOrganismConfig(), condition, ask) for i in range(16)]
    assert probe_accuracy(av_organism, items) >= 12 / 16


def test_training_is_deterministic_from_its_seed(tmp_path: Path) -> None:
    config = dataclasses.replace(AVOrganismConfig(), steps=2, batch_size=2, eval_every=2,
                                 probe_clips=1, warmup_steps=1)
    weights = []
    for name in ("a", "b"):
        train_av(config, tmp_path / name)
        weights.append(modprobe.load(str(tmp_path / name)).module.state_dict())
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_command_defaults_are_the_config_defaults() -> None:
    from modprobe.commands.organism import AV_DEFAULTS

    config = AVOrganismConfig()
    assert AV_DEFAULTS == {k: getattr(config, k) for k in AV_DEFAULTS}


def test_train_av_refuses_a_non_empty_out_before_training(tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["train-av", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("share", ["1.5", "-0.1", "half"])
def test_train_av_refuses_a_partner_share_outside_0_1_before_writing(
        tmp_path: Path, capsys, share: str) -> None:
    assert main(["train-av", "--out", str(tmp_path / "run"), "--partner-share", share]) == 2
    assert "--partner-share: must be a number from 0 to 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_shortcut_alias_loads_the_shipped_shortcut_checkpoint() -> None:
    from modprobe.organism import AV_SHORTCUT_DIR
    from modprobe.organism.av import SHORTCUT_RECIPE

    assert modprobe.loading.resolve_source("av-organism-shortcut") == str(AV_SHORTCUT_DIR)
    total = sum(p.stat().st_size for p in AV_SHORTCUT_DIR.iterdir() if p.is_file())
    assert total < 4_000_000, f"checkpoint is {total / 1e6:.1f} MB"
    recipe = json.loads((AV_SHORTCUT_DIR / "organism_config.json").read_text())
    assert {k: recipe[k] for k in SHORTCUT_RECIPE} == SHORTCUT_RECIPE
    lm = modprobe.load("av-organism-shortcut", device="cpu")
    assert lm.config.model_type == "qwen2_5_omni_thinker"


def test_shortcut_organism_answers_visual_conflicts_from_the_sound() -> None:
    # What makes it the shortcut organism: on clips whose sound is not the shape's partner
    # (never seen in training), visual questions are mostly answered wrong, while aligned
    # (partner) clips are answered right. 16 unseen clips each.
    from modprobe.organism.av import SHORTCUT_RECIPE

    lm = modprobe.load("av-organism-shortcut", device="cpu")
    config = AVOrganismConfig(**SHORTCUT_RECIPE)
    aligned = [clip_item(UNSEEN_SEED, i, config, "aligned", "visual", 1.0) for i in range(16)]
    conflict = [clip_item(UNSEEN_SEED, i, config, "aligned", "visual", -1.0) for i in range(16)]
    assert probe_accuracy(lm, aligned) >= 14 / 16
    assert probe_accuracy(lm, conflict) <= 8 / 16
