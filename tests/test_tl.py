"""The optional transformer-lens backend (``modprobe.tl``): guarded boot and cross-checks.

Everything that needs transformer-lens takes the ``tl`` fixture, which skips (with the
install hint) when the ``tl`` extra is not installed; the import-guard test runs always.
Tolerances: the agreements measured on the tiny models are ~2e-7 for the lens and
<= 1e-6 for attention (the brief asks for <= 1e-4).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from PIL import Image

import modprobe
from modprobe.loading import LoadedModel

#: Agreement asked of TL against plain transformers and against modprobe's capture.
TOLERANCE = 1e-4

#: Families transformer-lens 4.3 bridges (mirrors modprobe.tl.TL_FAMILIES, which can only
#: be imported with transformer-lens installed).
TL_FAMILIES = ("llava", "llava_next", "qwen2_5_vl")
NO_BRIDGE_FAMILIES = ("qwen2_vl", "instructblip")


@pytest.fixture(scope="module")
def tl() -> ModuleType:
    """``modprobe.tl``; skips the test when transformer-lens is not installed."""
    pytest.importorskip(
        "transformer_lens",
        reason="transformer-lens is not installed (optional extra: pip install modprobe[tl])")
    import modprobe.tl

    return modprobe.tl


@pytest.fixture(scope="module")
def eager_model(tiny_dir: Callable[..., Path]) -> Callable[[str], LoadedModel]:
    """Factory: a tiny model loaded with eager attention (the plain-HF reference needs it)."""
    loaded: dict[str, LoadedModel] = {}

    def make(family: str) -> LoadedModel:
        if family not in loaded:
            loaded[family] = modprobe.load(tiny_dir(family), dtype="float32", device="cpu",
                                           attn_implementation="eager")
        return loaded[family]

    return make


def padded_batch(loaded: LoadedModel) -> dict[str, Any]:
    """Two image prompts of different lengths: left padding on the second row."""
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    prompts = [
        modprobe.Prompt("What color is the circle ? Please answer with one word .",
                        images=[image]),
        modprobe.Prompt("What color ?", context="The circle is blue .", images=[image]),
    ]
    batch = loaded.encode(prompts)
    assert (batch["attention_mask"] == 0).any(), "the test batch should be padded"
    return batch


def hf_reference(loaded: LoadedModel, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Lens and attention rows from plain transformers (eager, output_* flags).

    ``hidden_states`` holds the embeddings then every layer's output, the last one
    already normed, so the final norm goes on all layer outputs but the last.
    """
    module = loaded.module
    with torch.no_grad():
        out = module(**loaded.adapter.model_inputs(batch, module), output_attentions=True,
                     output_hidden_states=True)
    positions = loaded.spans(batch).answer_positions()
    rows = torch.arange(positions.shape[0])
    norm, head = loaded.adapter.norm(module), loaded.adapter.lm_head(module)
    layer_outputs = out.hidden_states[1:]
    n_layers = len(layer_outputs)
    with torch.no_grad():
        lens = torch.stack([
            head(norm(h[rows, positions]) if i < n_layers - 1 else h[rows, positions])
            for i, h in enumerate(layer_outputs)], dim=1)
    attention = torch.stack([a.transpose(1, 2)[rows, positions] for a in out.attentions], dim=1)
    return lens.float(), attention.float()


class _SubprocessRecorder:
    """Records every subprocess command; refuses (raises on) anything pip/uv-like."""

    def __init__(self) -> None:
        self.commands: list[Any] = []

    def refuse(self, args: Any) -> None:
        self.commands.append(args)
        text = " ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
        if "pip" in text or "install" in text or text.split()[:1] == ["uv"]:
            raise OSError(f"test refused to spawn {text!r}")

    def installs(self) -> list[Any]:
        return [c for c in self.commands if "install" in str(c)]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _SubprocessRecorder:
    """Every subprocess entry point records its command and refuses pip/uv installs."""
    rec = _SubprocessRecorder()
    original_popen = subprocess.Popen

    class RecordingPopen(original_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: Any, *pargs: Any, **kwargs: Any) -> None:
            rec.refuse(args)
            super().__init__(args, *pargs, **kwargs)

    def refusing(name: str) -> Callable[..., Any]:
        original = getattr(subprocess, name)

        def call(args: Any, *pargs: Any, **kwargs: Any) -> Any:
            rec.refuse(args)
            return original(args, *pargs, **kwargs)

        return call

    monkeypatch.setattr(subprocess, "Popen", RecordingPopen)
    for name in ("run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refusing(name))
    monkeypatch.setattr(os, "system", lambda cmd: rec.refuse(cmd) or 1)
    return rec


# --------------------------------------------------------------------------- import guard


def test_modprobe_imports_without_transformer_lens_and_tl_says_how_to_install() -> None:
    # A fresh interpreter in which transformer_lens cannot be imported.
    script = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "transformer_lens" or name.startswith("transformer_lens."):
                    raise ModuleNotFoundError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import modprobe
        assert "transformer_lens" not in sys.modules
        try:
            import modprobe.tl
        except ImportError as err:
            print("IMPORT-ERROR:", err)
        else:
            print("NO-ERROR")
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "IMPORT-ERROR:" in done.stdout
    assert "pip install modprobe[tl]" in done.stdout


# --------------------------------------------------------------------------- boot guard


def test_recorder_catches_transformer_lens_runtime_install(
    tl: ModuleType, recorder: _SubprocessRecorder
) -> None:
    # Proves the recorder sees the install transformer-lens would run unguarded (it is
    # refused before anything spawns), so the guard test below is not vacuous.
    if tl._torchvision_importable():
        pytest.skip("torchvision is importable here, so transformer-lens would not install it")
    from transformer_lens.model_bridge.sources.transformers import helpers

    assert helpers._ensure_torchvision() is False
    assert recorder.installs(), "transformer-lens' torchvision install was not seen"
    assert "torchvision" in str(recorder.installs()[0])


def test_boot_from_folder_never_installs(
    tl: ModuleType, recorder: _SubprocessRecorder, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from transformer_lens.model_bridge.architecture_adapter import ArchitectureAdapter
    from transformer_lens.model_bridge.sources.transformers import helpers

    from modprobe.testing import tiny_config, tiny_model, tiny_tokenizer

    # Model and tokenizer but no processor: transformer-lens' processor load fails, the
    # path on which it runs `pip install torchvision`.
    tokenizer = tiny_tokenizer("llava")
    tiny_model("llava", tiny_config("llava", tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    reached: list[bool] = []

    def looked(original: Callable[[], bool] = tl._torchvision_importable) -> bool:
        reached.append(True)
        return original()

    monkeypatch.setattr(tl, "_torchvision_importable", looked)
    ensure, check = helpers._ensure_torchvision, ArchitectureAdapter._check_required_libraries
    popen = subprocess.Popen

    bridge = tl.boot_bridge(tmp_path, device="cpu")

    assert type(bridge).__name__ == "TransformerBridge"
    assert reached, "the boot did not reach transformer-lens' torchvision install path"
    assert recorder.installs() == []
    # Everything patched for the boot is restored.
    assert helpers._ensure_torchvision is ensure
    assert ArchitectureAdapter._check_required_libraries is check
    assert subprocess.Popen is popen


def test_guard_refuses_pip_install_subprocess(tl: ModuleType) -> None:
    with tl.no_runtime_installs(), pytest.raises(tl.RuntimeInstallRefused):
        subprocess.check_call([sys.executable, "-m", "pip", "install", "torchvision", "-q"])


def test_qwen2_5_vl_boots_without_torchvision(
    tl: ModuleType, tiny_model: Callable[..., LoadedModel], recorder: _SubprocessRecorder
) -> None:
    from transformer_lens.model_bridge.supported_architectures.qwen2_5_vl import (
        Qwen2_5_VLArchitectureAdapter,
    )

    if tl._torchvision_importable():
        pytest.skip("torchvision is importable here: the requirement check would pass anyway")
    # The check modprobe switches off is real: unguarded, the adapter refuses to build.
    with pytest.raises(ImportError, match="torchvision"):
        Qwen2_5_VLArchitectureAdapter.__new__(Qwen2_5_VLArchitectureAdapter) \
            ._check_required_libraries()
    bridge = tl.boot_bridge(tiny_model("qwen2_5_vl"))
    assert bridge.cfg.n_layers == tiny_model("qwen2_5_vl").adapter.num_layers(
        tiny_model("qwen2_5_vl").module)
    assert "torchvision" in Qwen2_5_VLArchitectureAdapter.required_libraries
    assert recorder.installs() == []


def test_boot_leaves_the_loaded_model_alone(
    tl: ModuleType, tiny_model: Callable[..., LoadedModel]
) -> None:
    loaded = tiny_model("llava")
    layers_type = type(loaded.adapter.decoder_layers(loaded.module)[0])
    attn = loaded.module.config._attn_implementation
    padding_side = loaded.tokenizer.padding_side
    tl.boot_bridge(loaded)
    assert type(loaded.adapter.decoder_layers(loaded.module)[0]) is layers_type
    assert loaded.module.config._attn_implementation == attn
    assert loaded.tokenizer.padding_side == padding_side


@pytest.mark.parametrize("family", NO_BRIDGE_FAMILIES)
def test_families_without_a_bridge_fail_clearly(
    tl: ModuleType, tiny_model: Callable[..., LoadedModel], family: str
) -> None:
    with pytest.raises(ValueError, match="no bridge"):
        tl.boot_bridge(tiny_model(family))


# --------------------------------------------------------------------------- cross-checks


@pytest.mark.parametrize("family", TL_FAMILIES)
def test_tl_matches_plain_transformers(
    tl: ModuleType, eager_model: Callable[[str], LoadedModel], family: str
) -> None:
    loaded = eager_model(family)
    batch = padded_batch(loaded)
    lens, attention = tl.tl_lens_and_attention(tl.boot_bridge(loaded), batch)
    ref_lens, ref_attention = hf_reference(loaded, batch)

    n_layers = loaded.adapter.num_layers(loaded.module)
    heads = loaded.adapter.language_config(loaded.config).num_attention_heads
    vocab = loaded.adapter.lm_head(loaded.module).weight.shape[0]
    seq = batch["input_ids"].shape[1]
    assert lens.shape == (2, n_layers, vocab)
    assert attention.shape == (2, n_layers, heads, seq)
    assert (lens - ref_lens).abs().max().item() <= TOLERANCE
    assert (attention - ref_attention).abs().max().item() <= TOLERANCE
    # Not vacuous: rows are distributions that put no mass on padding.
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, n_layers, heads))
    pad = batch["attention_mask"] == 0
    assert attention.permute(0, 3, 1, 2)[pad].abs().max().item() == 0.0


@pytest.mark.parametrize("family", TL_FAMILIES)
def test_tl_matches_modprobe_capture(
    tl: ModuleType, tiny_model: Callable[..., LoadedModel], family: str
) -> None:
    from modprobe.capture import attention_rows_to_mass, capture

    loaded = tiny_model(family)  # as modprobe loads it: SDPA; the bridge runs eager
    batch = padded_batch(loaded)
    cap = capture(loaded, batch, keep_lens_logits=True)
    lens, rows = tl.tl_lens_and_attention(tl.boot_bridge(loaded), batch)

    assert cap.lens_logits is not None and cap.attention_mass is not None
    assert torch.equal(cap.answer_positions, loaded.spans(batch).answer_positions())
    assert (lens - cap.lens_logits).abs().max().item() <= TOLERANCE
    mass = attention_rows_to_mass(rows, loaded.spans(batch))
    assert mass.shape == cap.attention_mass.shape
    assert (mass - cap.attention_mass).abs().max().item() <= TOLERANCE
