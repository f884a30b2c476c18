"""Remote execution through nnsight: ``modprobe.load(..., remote="local")``.

nnsight's local simulation serialises every trace as a run on NDIF would, deserialises
it with modprobe's own modules hidden (as on a server, where only torch, transformers,
nnsight... are installed) and runs it against the model here. A capture through it
equal to the local capture says that the capture's traces can be shipped.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from PIL import Image

import modprobe
from modprobe.adapters import Prompt
from modprobe.capture import capture
from modprobe.errors import ModprobeError
from modprobe.finetune.config import TrainConfig
from modprobe.finetune.trainer import FinetuneError, train


def _prompts() -> list[Prompt]:
    image = Image.new("RGB", (32, 32), (200, 10, 10))
    question = "What color is the circle?"
    return [Prompt.for_condition("multi", question, "the circle is blue", image),
            Prompt.for_condition("vision", question, None, image),
            Prompt.for_condition("text", question, "the circle is green", None)]


def test_local_simulation_of_a_remote_capture_equals_the_local_capture(
        tiny_dir, tiny_model) -> None:
    remote = modprobe.load(tiny_dir("llava"), dtype="float32", device="cpu", remote="local")
    assert remote.remote == "local"
    whole = tiny_model("llava")
    one = capture(whole, _prompts(), candidates=["red", "blue"], top_k=3).cpu()
    two = capture(remote, _prompts(), candidates=["red", "blue"], top_k=3).cpu()
    pd.testing.assert_frame_equal(two.to_frames().lens, one.to_frames().lens, check_exact=True)
    assert torch.equal(two.attention_mass, one.attention_mass)
    assert torch.equal(two.final_candidate_logits, one.final_candidate_logits)


def test_local_simulation_really_serialises_the_trace(tiny_dir, monkeypatch) -> None:
    from nnsight.intervention.backends import local

    calls: list[int] = []
    original = local.LocalSimulationBackend.__call__

    def counted(self, tracer):
        calls.append(1)
        return original(self, tracer)

    monkeypatch.setattr(local.LocalSimulationBackend, "__call__", counted)
    remote = modprobe.load(tiny_dir("llava"), dtype="float32", device="cpu", remote="local")
    capture(remote, _prompts()[:1], candidates=["red", "blue"], top_k=3)
    assert calls, "the capture did not go through nnsight's remote simulation"


def test_fine_tuning_a_remote_model_is_refused(tiny_dir, tmp_path) -> None:
    remote = modprobe.load(tiny_dir("llava"), dtype="float32", device="cpu", remote="local")
    with pytest.raises(FinetuneError, match="fine-tuning needs the model's weights here"):
        train(remote, [], TrainConfig(out=str(tmp_path / "run"), steps=1))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"remote": True}, "NDIF, which only runs hub models it hosts.*is a local folder"),
    ({"remote": "ndif"}, "remote must be True"),
    ({"remote": "local", "device_map": "auto"}, "remote and device_map both given"),
])
def test_bad_remote_requests_are_refused_before_loading(tiny_dir, kwargs, message) -> None:
    with pytest.raises(ModprobeError, match=message):
        modprobe.load(tiny_dir("llava"), **kwargs)


def test_a_short_study_through_the_remote_simulation_equals_the_local_study(
        tiny_dir, tmp_path) -> None:
    """``modprobe study --remote local``: every trace serialised as on NDIF, same tables."""
    import json

    from modprobe.data import generate_colors
    from modprobe.study.runner import StudyConfig, run_study

    lowres_data = tmp_path / "data"
    generate_colors(lowres_data, groups=1, seed=3, variant="lowres")
    runs = {}
    for remote in (None, "local"):
        out = tmp_path / f"run-{remote}"
        run_study(StudyConfig(model=str(tiny_dir("llava")), data=str(lowres_data), out=str(out),
                              limit=6, batch_size=3, dtype="float32", device="cpu",
                              n_bootstrap=50, figures=False, remote=remote), progress=False)
        runs[remote] = out
    manifest = json.loads((runs["local"] / "manifest.json").read_text())
    assert manifest["options"]["remote"] == "local"
    for name in ("items.parquet", "layers.parquet", "attention_mass.npy"):
        assert (runs["local"] / name).read_bytes() == (runs[None] / name).read_bytes(), name


def test_a_model_on_the_meta_device_has_a_fingerprint_of_its_own() -> None:
    """A remote (meta) model's fingerprint covers shapes only and never equals a local one."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from modprobe.fingerprint import model_fingerprint

    config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, vocab_size=64)
    local = LlamaForCausalLM(config)
    with torch.device("meta"):
        meta = LlamaForCausalLM(config)
    assert model_fingerprint(meta)["weights"].startswith("meta:")
    assert model_fingerprint(meta)["config"] == model_fingerprint(local)["config"]
    assert not model_fingerprint(local)["weights"].startswith("meta:")
