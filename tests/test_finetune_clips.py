"""Fine-tuning on clip questions (modprobe.finetune.clips) on the bundled tiny AV organism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import modprobe
from modprobe.data.clips import PARTNER_SOUNDS
from modprobe.errors import ModprobeError
from modprobe.finetune import FinetuneError, LoraSettings, LossConfig, TrainConfig, compute_losses
from modprobe.finetune.clips import clip_batch, draw_rows, relevant_clip_span, train_clips
from modprobe.organism.av import AVOrganismConfig, tuning_items
from modprobe.organism.av_tuning import TuningPlan


@pytest.fixture(scope="module")
def items() -> list:
    return tuning_items(6, AVOrganismConfig())


def _calibration(loaded: modprobe.LoadedModel, items: list) -> float:
    terms = compute_losses(loaded, clip_batch(loaded, items), None, LossConfig(calibration=1.0))
    return float(terms["calibration"].detach())


def test_tuning_items_hold_conflicts_labelled_by_the_named_modality(items: list) -> None:
    assert len(items) == 12
    conflicts = [it for it in items if PARTNER_SOUNDS[it.visual_class] != it.audio_class]
    assert len(conflicts) == 6  # half the clips, both questions each
    for item in items:
        assert item.gold == (item.visual_class if item.ask == "visual" else item.audio_class)
        assert item.cluster == item.id.split(":")[0]


def test_relevant_span_is_the_named_modality() -> None:
    assert relevant_clip_span("audio") == "audio"
    assert relevant_clip_span("visual") == "image"
    assert relevant_clip_span("visual", "video") == "video"
    with pytest.raises(ValueError, match="ask"):
        relevant_clip_span("smell")


def test_rows_are_a_function_of_seed_and_step() -> None:
    assert draw_rows(50, 8, 0, 3).tolist() == draw_rows(50, 8, 0, 3).tolist()
    assert draw_rows(50, 8, 0, 3).tolist() != draw_rows(50, 8, 0, 4).tolist()


def test_clip_tuning_lowers_the_calibration_loss_and_loads_back(items: list,
                                                                tmp_path: Path) -> None:
    from modprobe.fingerprint import model_fingerprint
    from modprobe.run import load_run

    base = modprobe.load("av-organism", device="cpu")
    before = _calibration(base, items)
    base_print = model_fingerprint(base.module)
    config = TrainConfig(out=str(tmp_path / "run"), steps=10, batch_size=12, learning_rate=3e-3,
                         loss=LossConfig(answer=0.0, calibration=1.0), threads=1,
                         lora=LoraSettings(rank=4))
    result = train_clips(base, items, config)
    after = _calibration(result.model, items)
    assert after < 0.75 * before, (before, after)  # measured: 0.62 -> 0.34
    assert list(result.log["step"]) == list(range(1, 11))
    assert result.trainable > 0
    # The manifest has every run folder's provenance, and only the options clips use.
    run = load_run(tmp_path / "run")
    assert run.manifest["fingerprints"]["model"] == base_print
    assert {"torch", "transformers", "modprobe"} <= set(run.manifest["versions"])
    assert run.manifest["options"]["visual"] == "image"
    assert not {"holdout", "checkpoint_every"} & set(run.manifest["options"])
    assert run.summary["steps"] == 10
    # Only LoRA weights trained: the run folder holds an adapter that loads onto the base.
    tuned = modprobe.load(str(tmp_path / "run"), device="cpu")
    batch = clip_batch(tuned, items[:2]).batch
    with torch.no_grad():
        mine = result.model.module(**result.model.adapter.model_inputs(batch, result.model.module))
        again = tuned.module(**tuned.adapter.model_inputs(batch, tuned.module))
    torch.testing.assert_close(mine.logits, again.logits)


def test_bad_options_are_refused_before_anything_is_written(items: list, tmp_path: Path) -> None:
    base = modprobe.load("av-organism", device="cpu")
    out = tmp_path / "run"
    with pytest.raises(FinetuneError, match="LoRA"):
        train_clips(base, items, TrainConfig(out=str(out), mode="full"))
    with pytest.raises(FinetuneError, match="perturbations"):
        train_clips(base, items, TrainConfig(out=str(out), perturbations=("MD",)))
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ModprobeError, match="not empty|overwrite"):
        train_clips(base, items, TrainConfig(out=str(out), steps=1))
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_an_interrupted_tuning_leaves_no_folder_behind(items: list, tmp_path: Path,
                                                         monkeypatch) -> None:
    """Clip runs do not resume, so a stopped one removes its folder and a rerun can start."""
    from modprobe.finetune import clips

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(clips, "_steps", interrupted)
    base = modprobe.load("av-organism", device="cpu")
    config = TrainConfig(out=str(tmp_path / "run"), steps=2, batch_size=4,
                         lora=LoraSettings(rank=2))
    with pytest.raises(KeyboardInterrupt):
        train_clips(base, items, config)
    assert not (tmp_path / "run").exists()


def test_tune_av_command_refuses_an_unknown_variant_before_writing(tmp_path: Path,
                                                                   capsys) -> None:
    from modprobe.organism.__main__ import main

    out = tmp_path / "exp"
    assert main(["tune-av", "--out", str(out), "--variants", "answer,magic"]) == 2
    err = capsys.readouterr().err
    assert "--variants" in err and "magic" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_tune_av_refuses_an_out_that_is_a_file_from_the_api_too(tmp_path: Path) -> None:
    from modprobe.organism.av_tuning import run_tuning

    out = tmp_path / "file"
    out.write_text("mine")
    with pytest.raises(ModprobeError, match="is a file"):
        run_tuning(out)
    with pytest.raises(ModprobeError, match="--variants: unknown magic"):
        run_tuning(tmp_path / "exp", TuningPlan(variants=("magic",)))
    assert out.read_text() == "mine" and not (tmp_path / "exp").exists()


def test_tune_av_defaults_are_the_plan_defaults() -> None:
    from modprobe.commands.organism import TUNE_DEFAULTS
    from modprobe.organism.av_tuning import TuningPlan

    plan = TuningPlan()
    assert TUNE_DEFAULTS == {k: getattr(plan, k) for k in TUNE_DEFAULTS}


def test_tune_av_refuses_a_folder_of_other_settings_or_other_files(tmp_path: Path) -> None:
    from modprobe.organism.av_tuning import TuningPlan, run_tuning

    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ModprobeError, match="not empty"):
        run_tuning(other, TuningPlan())
    assert sorted(p.name for p in other.iterdir()) == ["keep.txt"]
    done = tmp_path / "done"
    done.mkdir()
    (done / "plan.json").write_text('{"steps": 10}')
    with pytest.raises(ModprobeError, match="other settings.*steps"):
        run_tuning(done, TuningPlan())
    assert sorted(p.name for p in done.iterdir()) == ["plan.json"]
