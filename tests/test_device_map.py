"""Sharded loading: the capture is exact when accelerate places layers on other devices.

This machine has no GPU, so the split is the one accelerate offers on a CPU: some layers
on the CPU, the others offloaded to disk (their weights stay on the meta device and are
loaded into each layer just before it runs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

import modprobe
from modprobe.adapters import Prompt
from modprobe.capture import capture
from modprobe.errors import ModprobeError
from modprobe.loading import parse_device_map

LM = "model.language_model."
#: The tiny llava's modules, its three language layers split between the CPU and disk.
SPLIT = {"model.vision_tower": "cpu", "model.multi_modal_projector": "cpu",
         LM + "embed_tokens": "cpu", LM + "layers.0": "cpu", LM + "layers.1": "disk",
         LM + "layers.2": "disk", LM + "norm": "cpu", LM + "rotary_emb": "cpu",
         "lm_head": "cpu"}


def _prompts() -> list[Prompt]:
    image = Image.new("RGB", (32, 32), (200, 10, 10))
    question = "What color is the circle?"
    return [Prompt.for_condition("multi", question, "the circle is blue", image),
            Prompt.for_condition("vision", question, None, image),
            Prompt.for_condition("text", question, "the circle is green", None)]


def _assert_same_capture(sharded: modprobe.LoadedModel, whole: modprobe.LoadedModel) -> None:
    prompts = _prompts()
    one = capture(whole, prompts, candidates=["red", "blue"], top_k=3).cpu()
    two = capture(sharded, prompts, candidates=["red", "blue"], top_k=3).cpu()
    pd.testing.assert_frame_equal(two.to_frames().lens, one.to_frames().lens, check_exact=True)
    assert torch.equal(two.attention_mass, one.attention_mass)
    assert torch.equal(two.final_candidate_logits, one.final_candidate_logits)


def test_capture_under_a_cpu_disk_split_equals_the_whole_model(tiny_dir, tiny_model,
                                                              tmp_path: Path) -> None:
    sharded = modprobe.load(tiny_dir("llava"), dtype="float32", device_map=SPLIT,
                            offload_folder=tmp_path / "offload")
    assert sharded.module.hf_device_map[LM + "layers.2"] == "disk"
    assert {p.device.type for p in sharded.module.parameters()} == {"cpu", "meta"}
    assert sharded.device == torch.device("cpu")
    _assert_same_capture(sharded, tiny_model("llava"))


def test_auto_map_puts_everything_on_the_cpu_here(tiny_dir, tiny_model) -> None:
    # the one device of this machine; on GPUs "auto" spreads the layers over them
    sharded = modprobe.load(tiny_dir("llava"), dtype="float32", device_map="auto")
    placed = getattr(sharded.module, "hf_device_map", {"": "cpu"})  # one device: no map kept
    assert set(placed.values()) == {"cpu"}
    _assert_same_capture(sharded, tiny_model("llava"))


def test_device_map_option_reads_a_name_or_a_json_object() -> None:
    assert parse_device_map("auto") == "auto"
    assert parse_device_map('{"lm_head": 0, "model": "cpu"}') == {"lm_head": 0, "model": "cpu"}
    with pytest.raises(ModprobeError, match="--device-map"):
        parse_device_map("everywhere")
    with pytest.raises(ModprobeError, match="--device-map"):
        parse_device_map('{"lm_head": [0]}')


@pytest.mark.parametrize("kwargs, message", [
    ({"device": "cpu", "device_map": "auto"}, "not both"),
    ({"device_map": {"lm_head": "disk"}}, "offload_folder"),
    ({"max_memory": {"cpu": "1GiB"}}, "only with device_map"),
    ({"device_map": 3}, "device_map must be"),
])
def test_bad_placement_is_refused_before_loading(tiny_dir, kwargs, message: str) -> None:
    with pytest.raises(ModprobeError, match=message):
        modprobe.load(tiny_dir("llava"), dtype="float32", **kwargs)


def test_study_cli_runs_under_a_device_map(tiny_dir, tmp_path: Path) -> None:
    from modprobe.data import generate_colors
    from modprobe.layers import main

    data = tmp_path / "data"
    generate_colors(data, groups=1, seed=0, variant="lowres")
    common = ["--model", str(tiny_dir("llava")), "--data", str(data), "--limit", "3",
              "--bootstrap", "20", "--no-figures", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "whole"), "--device", "cpu"]) == 0
    mapped = '{"model": "cpu", "lm_head": "cpu"}'
    assert main([*common, "--out", str(tmp_path / "mapped"), "--device-map", mapped]) == 0
    for name in ("items.parquet", "layers.parquet", "attention_mass.npy"):
        assert (tmp_path / "mapped" / name).read_bytes() == \
            (tmp_path / "whole" / name).read_bytes(), name


def test_device_map_cli_refusals_write_nothing(tiny_dir, tmp_path: Path, capsys) -> None:
    from modprobe.layers import main
    from modprobe.study.distributed import World

    out = tmp_path / "run"
    assert main(["--model", str(tiny_dir("llava")), "--out", str(out), "--device", "cpu",
                 "--device-map", "auto"]) == 2
    assert "--device and --device-map" in capsys.readouterr().err
    assert main(["--model", str(tiny_dir("llava")), "--out", str(out),
                 "--device-map", "everywhere"]) == 2
    assert "--device-map must be one of" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ModprobeError, match="one process"):
        World(rank=0, count=2).placement(None, "auto")
