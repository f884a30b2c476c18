"""``layers --causal --lens tuned``: the causal and tuned-lens tables of a study run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modprobe
from modprobe.capture.tuned import TranslatorError, Translators
from modprobe.study import StudyConfig, StudyError, run_study
from modprobe.testing import build_tiny


def _config(model: Path, data: Path, out: Path, **kw: object) -> StudyConfig:
    options = {"batch_size": 3, "limit": 6, "n_bootstrap": 50, "figures": False}
    options.update(kw)
    return StudyConfig(model=str(model), data=str(data), out=str(out), **options)


def test_causal_and_tuned_tables(llava_dir: Path, lowres_data: Path, tmp_path: Path) -> None:
    lm = modprobe.load(llava_dir, dtype="float32", device="cpu")
    identity = Translators.identity(lm).save(tmp_path / "identity.safetensors")
    out = tmp_path / "run"
    run_study(_config(llava_dir, lowres_data, out, causal=True, lens="tuned",
                      translators=str(identity), figures=True), progress=False)
    run = modprobe.load_run(out)
    tables = run.tables
    n_layers = lm.adapter.num_layers(lm.module)
    knock = tables["knockout"]
    assert len(knock) == 6 * 2 * n_layers
    assert set(knock["span"]) == {"image", "context"}
    assert bool((knock["flipped"] == (knock["answer_clean"] != knock["answer_knocked"])).all())
    patched = tables["patching"]
    last = patched[(patched["layer"] == n_layers - 1) & (patched["site"] == "answer")]
    finite = np.isfinite(last["restored"].to_numpy(float))
    assert finite.any()
    np.testing.assert_allclose(last["restored"].to_numpy(float)[finite], 1.0, atol=1e-3)
    # identity translators: the tuned lens table is the logit lens table
    lens, tuned = tables["layers"], tables["layers_tuned"]
    cols = [c for c in lens.columns if c.startswith(("entropy", "logit_"))]
    np.testing.assert_array_equal(lens[cols].to_numpy(float), tuned[cols].to_numpy(float))
    assert {"knockout_by_layer", "patching_by_layer"} <= set(tables)
    assert "causal" in run.summary and (out / "figures" / "causal.png").is_file()
    assert (out / "tuned" / "summary.json").is_file()
    assert any(line.startswith("tuned lens oscillation") for line in run.summary["lines"])


def test_translators_of_another_model_are_refused_before_writing(
        llava_dir: Path, lowres_data: Path, tmp_path: Path) -> None:
    other = modprobe.load(build_tiny("llava", tmp_path / "other", seed=5), dtype="float32",
                          device="cpu")
    path = Translators.identity(other).save(tmp_path / "other.safetensors")
    out = tmp_path / "run"
    with pytest.raises(TranslatorError, match="trained on another model"):
        run_study(_config(llava_dir, lowres_data, out, lens="tuned", translators=str(path)),
                  progress=False)
    assert not out.exists()
    with pytest.raises(StudyError, match="--translators applies only with --lens tuned"):
        run_study(_config(llava_dir, lowres_data, out, translators=str(path)), progress=False)
    with pytest.raises(StudyError, match="--lens must be logit or tuned"):
        run_study(_config(llava_dir, lowres_data, out, lens="tunned"), progress=False)


def test_resume_with_other_causal_or_lens_options_is_refused_up_front(tmp_path) -> None:
    """--causal, --lens and --translators change the tables: a resume must keep them, also
    for runs whose manifest predates those options (there they meant off / logit / none)."""
    from modprobe.study.runfolder import StudyError, check_resume
    from modprobe.study.runner import _RESUME_DEFAULTS, _RESUME_KEYS

    old = {"options": {"model": "m", "data": "d"}}  # written before the causal options
    same = {"model": "m", "data": "d", "causal": False, "lens": "logit", "translators": None}
    check_resume(tmp_path, old, same, _RESUME_KEYS, defaults=_RESUME_DEFAULTS)
    for change in ({"causal": True}, {"lens": "tuned"}, {"translators": "t.safetensors"}):
        with pytest.raises(StudyError, match=next(iter(change))):
            check_resume(tmp_path, old, {**same, **change}, _RESUME_KEYS,
                         defaults=_RESUME_DEFAULTS)
    new = {"options": {**same, "causal": True}}
    with pytest.raises(StudyError, match="causal: True -> False"):
        check_resume(tmp_path, new, same, _RESUME_KEYS, defaults=_RESUME_DEFAULTS)
