"""Load a multimodal model, its processor and its adapter, wrapped for nnsight.

```python
import modprobe
lm = modprobe.load("llava")                 # alias of llava-hf/llava-1.5-7b-hf
lm = modprobe.load("/models/tiny-llava")    # a local folder works the same way
batch = lm.encode([modprobe.Prompt("What color is the circle?", images=[img])])
print(lm.spans(batch).describe(0))
```
"""

from __future__ import annotations

import difflib
import json
import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modprobe.adapters import Adapter, AdapterError, Prompt, adapter_for
from modprobe.checks import DTYPES, check_device, check_dtype
from modprobe.errors import ModprobeError
from modprobe.spans import ModalitySpans

#: Short names for the checkpoints the papers study (hub ids; need network or a cache).
ALIASES: dict[str, str] = {
    "llava": "llava-hf/llava-1.5-7b-hf",
    "llava-next": "llava-hf/llava-v1.6-mistral-7b-hf",
    "qwen2-vl": "Qwen/Qwen2-VL-7B-Instruct",
    "qwen2.5-vl": "Qwen/Qwen2.5-VL-7B-Instruct",
    "instructblip": "Salesforce/instructblip-vicuna-7b",
}

#: Aliases that resolve to a folder shipped inside modprobe (filled in by modules that
#: ship one, e.g. the bundled model organism).
LOCAL_ALIASES: dict[str, Path] = {
    "organism": Path(__file__).resolve().parent / "organism" / "checkpoint",
    "av-organism": Path(__file__).resolve().parent / "organism" / "av_checkpoint",
}

#: Model dtypes by name (``modprobe.checks.DTYPES``: one table for the API and the CLIs).
_DTYPES: dict[str, Any] = {name: value if value == "auto" else getattr(torch, value)
                           for name, value in DTYPES.items()}


class ModelNotFoundError(ModprobeError, FileNotFoundError):
    """The requested model is neither a known alias, a local folder, nor reachable."""


class ModelLoadError(ModprobeError):
    """The model's files are there but cannot be loaded (truncated or corrupt weights, a
    pickle checkpoint that is not plain tensors, a broken config)."""


@dataclass
class LoadedModel:
    """A model ready for modprobe: the nnsight wrapper, its processor and adapter.

    Attributes:
        model: The nnsight wrapper (``model.trace(**batch)`` runs an intervention).
        processor: The transformers processor (tokenizer + image processor).
        adapter: Where this family keeps its parts and how its prompts are built.
        name: What the user asked for (alias, hub id or folder).
        source: The resolved hub id or local folder.
        remote: Where traces run: ``False`` here, ``True`` on NDIF, ``"local"`` through
            nnsight's local simulation of a remote run (see :func:`load`).
    """

    model: Any
    processor: Any
    adapter: Adapter
    name: str
    source: str
    remote: bool | str = False

    @property
    def module(self) -> torch.nn.Module:
        """The underlying torch model."""
        return getattr(self.model, "_module", self.model)

    @property
    def config(self) -> Any:
        return self.module.config

    @property
    def device(self) -> torch.device:
        """Where inputs go: the model's device, or under a ``device_map`` the first
        device that holds layers (accelerate moves activations between the others).
        Remote models (on the meta device here) take their inputs on the CPU."""
        if self.remote is True:
            return torch.device("cpu")
        placed = getattr(self.module, "hf_device_map", None)
        if placed:
            for where in placed.values():
                if where not in ("disk", "meta"):
                    return torch.device(where if not isinstance(where, int) else f"cuda:{where}")
            return torch.device("cpu")
        return next(self.module.parameters()).device

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    def encode(self, prompts: list[Prompt], padding_side: str = "left") -> dict[str, torch.Tensor]:
        """Tokenize prompts with the family's chat template, on the model's device."""
        return self.adapter.encode(self.processor, prompts, padding_side=padding_side,
                                   device=self.device)

    def spans(self, batch: dict[str, torch.Tensor]) -> ModalitySpans:
        """Spans of an encoded batch (the context span needs the batch's ``context_mask``)."""
        return self.adapter.spans(self.config, batch["input_ids"], batch.get("attention_mask"),
                                  batch.get("context_mask"))


def resolve_source(name_or_path: str | os.PathLike[str]) -> str:
    """Turn an alias, hub id or folder into what ``from_pretrained`` takes.

    Raises:
        ModelNotFoundError: for a path-like name whose folder does not exist, or a bare
            name that is no known alias (the message lists the aliases).
    """
    name = os.fspath(name_or_path)
    if name in LOCAL_ALIASES:
        return str(LOCAL_ALIASES[name])
    if name in ALIASES:
        return ALIASES[name]
    path = Path(name).expanduser()
    if path.is_dir():
        tuned = finetuned_model_dir(path)
        if tuned is not None:
            return str(tuned)
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"{name!r} is a folder but holds no config.json; point to a folder written by "
                "save_pretrained (e.g. by `python -m modprobe.testing tiny llava --out DIR`)")
        return str(path)
    # A hub id is exactly "org/name"; anything else with a slash, or starting like a
    # path, is a folder the user expected to exist.
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name
    if looks_like_path or path.exists():
        raise ModelNotFoundError(
            f"local model folder {name!r} does not exist; check the path, or create a test "
            "model there with `python -m modprobe.testing tiny llava --out DIR`")
    if "/" not in name:
        known = sorted([*ALIASES, *LOCAL_ALIASES])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ModelNotFoundError(
            f"unknown model alias {name!r}.{hint} Known aliases: {', '.join(known)}. "
            "Or pass a hub id (org/name) or a local folder.")
    return name


def finetuned_model_dir(path: Path) -> Path | None:
    """The model folder of a fine-tuning run (``modprobe.finetune``), or None.

    ``path`` may be the run folder (``RUN/model`` is returned) or a folder holding a
    LoRA adapter (``adapter_config.json``), returned as is.

    Raises:
        ModelNotFoundError: ``path`` is a fine-tuning run that has not finished.
    """
    if (path / "adapter_config.json").is_file():
        return path
    manifest = path / "manifest.json"
    if (path / "config.json").is_file() or not manifest.is_file():
        return None
    import json

    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("kind") != "finetune":
        return None
    model = path / "model"
    if info.get("status") == "complete" and not model.is_dir():
        raise ModelNotFoundError(
            f"fine-tuning run {str(path)!r} finished, but its model folder {str(model)!r} is "
            "gone (deleted or moved); put the folder back, or train again into a new --out")
    if info.get("status") != "complete" or not model.is_dir():
        raise ModelNotFoundError(
            f"fine-tuning run {str(path)!r} has not finished (status {info.get('status')!r}); "
            "resume it with `python -m modprobe.finetune ... --out "
            f"{path} --resume`, or load its base model")
    return model


#: Adapter folders whose base model is being loaded (a base that leads back is a cycle).
_ADAPTERS_LOADING: set[str] = set()


def _adapter_base(folder: Path) -> str:
    """``base_model_name_or_path`` of the adapter in ``folder``.

    Raises:
        ModelLoadError: ``adapter_config.json`` is not UTF-8 JSON or names no base.
    """
    import json

    path = folder / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelLoadError(f"{str(path)!r} is not valid JSON ({err}); copy the run again, "
                             "or train again") from None
    base_name = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not isinstance(base_name, str) or not base_name:
        raise ModelNotFoundError(f"{str(folder)!r} holds a LoRA adapter without "
                                 "base_model_name_or_path in adapter_config.json")
    return base_name


def _check_base_fingerprint(folder: Path, base: LoadedModel, base_name: str,
                            verify_base: bool, requested_dtype: Any) -> None:
    """Refuse to merge a run's adapter onto base weights other than those it was trained
    on: the run's ``manifest.json`` keeps the base model's fingerprint
    (:func:`modprobe.fingerprint.model_fingerprint`). The fingerprint is compared in
    every dtype the base could have been trained in, so loading a bfloat16 base in float32
    passes; a base loaded in a lower precision than ``auto`` that does not match gets a
    warning instead (the check cannot tell). An adapter folder without a run manifest
    beside it is not checked."""
    import json

    if not verify_base:
        return
    try:
        manifest = json.loads((folder.parent / "manifest.json").read_text(encoding="utf-8"))
        recorded = manifest["fingerprints"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not isinstance(recorded, dict) or manifest.get("kind") != "finetune":
        return
    from modprobe.fingerprint import model_fingerprint

    for dtype in (None, torch.float32, torch.bfloat16, torch.float16):
        if model_fingerprint(base.module, as_dtype=dtype) == recorded:
            return
    message = (f"the base model {base_name!r} is not the one the run {str(folder.parent)!r} "
               "was trained on (its weights or config fingerprint changed since training), so "
               "its adapter would be merged onto other weights; restore the original base, "
               "or train again (to merge anyway: modprobe.load(RUN, verify_base=False))")
    if requested_dtype not in (None, "auto") and base.module.dtype != torch.float32:
        # A base trained in float32 and loaded in a lower precision cannot be matched.
        warnings.warn(f"{message}; or the base was trained in a higher precision than "
                      f"dtype={requested_dtype!r}: load with dtype='auto' to check",
                      stacklevel=3)
        return
    raise ModelLoadError(message)


def _load_adapter(folder: Path, name: str, verify_base: bool = True,
                  **load_kwargs: Any) -> LoadedModel:
    """Base model + LoRA adapter of ``folder``, merged, wrapped for nnsight.

    The adapter's ``base_model_name_or_path`` (an alias or a folder, as
    ``modprobe.finetune`` records it) is loaded with the same options; merging leaves a
    plain model of the base class, so capture and runners see no peft layers.
    """
    from nnsight import NNsight
    from peft import PeftModel

    base_name = _adapter_base(folder)
    key = str(folder.resolve())
    if key in _ADAPTERS_LOADING:
        raise ModelLoadError(
            f"the LoRA adapter in {str(folder)!r} names a base model "
            f"({base_name!r} in adapter_config.json) that leads back to itself; set "
            "base_model_name_or_path to the model it was trained on")
    _ADAPTERS_LOADING.add(key)
    try:
        base = load(base_name, **load_kwargs)
    finally:
        _ADAPTERS_LOADING.discard(key)
    _check_base_fingerprint(folder, base, base_name, verify_base, load_kwargs.get("dtype"))
    try:
        with warnings.catch_warnings():
            # peft asks transformers about gradient checkpointing through a deprecated name.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            merged = PeftModel.from_pretrained(base.module, str(folder)).merge_and_unload()
    except Exception as err:  # safetensors' SafetensorError derives from Exception only
        if _is_corrupt_weights(err) or isinstance(err, (OSError, KeyError, ValueError)):
            raise ModelLoadError(
                f"the LoRA adapter in {str(folder)!r} cannot be read ({_first_line(err)[:200]});"
                " its files are truncated, corrupt or from another base model: copy the run "
                "again, or train again") from err
        raise
    merged.eval()
    return LoadedModel(model=NNsight(merged), processor=base.processor, adapter=base.adapter,
                       name=name, source=str(folder))


class _NoVideoProcessor:
    """Stands for the video processor a torchvision-less install cannot build.

    Processors that read video sampling defaults while templating images (SmolVLM's
    ``apply_chat_template`` reads ``num_frames`` and ``fps``) get None; anything else
    says what is missing.
    """

    num_frames = None
    fps = None

    def __bool__(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"no video processor (reading {name!r}): transformers builds video processors only "
            "with torchvision installed; modprobe loaded this processor for images only")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("videos need torchvision: this processor was loaded for images only")


_NO_VIDEO = _NoVideoProcessor()


def image_only_processor_class(processor_class: type) -> type:
    """A subclass of a multimodal processor class that needs no video processor.

    Qwen-VL processors take a video processor, and transformers builds video processors
    only with torchvision installed. modprobe studies images, so without torchvision it
    loads (and the tiny-model builder creates) the processor without that part; the
    subclass keeps the original class name, so what it saves loads anywhere.
    """

    from transformers import ProcessorMixin

    full = list(processor_class.get_attributes())

    class _DropVideoArgument(ProcessorMixin):
        # Sits between the family's class and ProcessorMixin in the MRO: the family's
        # __init__ passes its sub-processors on positionally, the video processor among
        # them (second for Qwen2.5-Omni); without it listed, it must leave the arguments.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("video_processor", None)
            if "video_processor" in full and len(args) > full.index("video_processor"):
                args = args[:full.index("video_processor")] + args[full.index("video_processor") + 1:]
            super().__init__(*args, **kwargs)

    class ImageOnlyProcessor(processor_class, _DropVideoArgument):  # type: ignore[misc, valid-type]
        # The parent's __init__ (kept: transformers reads the sub-processors off its
        # signature) passes video_processor=None on; without the attribute listed, the
        # processor neither checks, saves nor loads it. Chat templating reads the video
        # sampling defaults off it (SmolVLM): there are none.
        video_processor = _NO_VIDEO

        @classmethod
        def get_attributes(cls) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

        @classmethod
        def from_args_and_dict(cls, args: Any, processor_dict: dict[str, Any],
                               **kwargs: Any) -> Any:
            # from_pretrained loads the listed sub-processors (no video processor) and
            # passes them positionally: put None where the parent's __init__ expects one.
            loaded = dict(zip([a for a in full if a != "video_processor"], args))
            args = [loaded.get(name) for name in full]
            return super().from_args_and_dict(args, processor_dict, **kwargs)

    ImageOnlyProcessor.__name__ = processor_class.__name__
    ImageOnlyProcessor.__qualname__ = processor_class.__qualname__
    return ImageOnlyProcessor


def load_processor(source: str, **kwargs: Any) -> Any:
    """``AutoProcessor.from_pretrained``, falling back to an image-only processor.

    The fallback applies when torchvision is missing and the family's processor wants a
    video processor (Qwen-VL): the image processor (PIL backend), tokenizer and chat
    template load as usual.
    """
    from transformers import AutoProcessor
    from transformers.utils import is_torchvision_available

    try:
        return AutoProcessor.from_pretrained(source, **kwargs)
    except OSError as err:
        if is_torchvision_available() or "video processor" not in str(err):
            raise
    import transformers

    processor_class = getattr(transformers, _processor_class_name(source, **kwargs))
    return image_only_processor_class(processor_class).from_pretrained(source, **kwargs)


def _processor_class_name(source: str, **kwargs: Any) -> str:
    """The processor class a checkpoint names, else the one of its model type.

    The class saved with the processor comes first: several model types share one
    processor (Qwen2.5-Omni's thinker uses ``Qwen2_5OmniProcessor``, which
    ``PROCESSOR_MAPPING_NAMES`` lists under ``qwen2_5_omni`` only).
    """
    import json

    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES
    from transformers.utils import cached_file

    cache_kwargs = {k: v for k, v in kwargs.items() if k in ("local_files_only", "revision",
                                                             "cache_dir", "token")}
    for filename in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        try:
            path = cached_file(source, filename, _raise_exceptions_for_missing_entries=False,
                               **cache_kwargs)
        except OSError:
            path = None
        if path:
            name = json.loads(Path(path).read_text()).get("processor_class")
            if name and hasattr(__import__("transformers"), name):
                return name
    model_type = AutoConfig.from_pretrained(source, **kwargs).model_type
    if model_type not in PROCESSOR_MAPPING_NAMES:
        raise ModelNotFoundError(
            f"cannot tell which processor {source!r} uses (model type {model_type!r}; no "
            "processor_class saved with it); save the processor with save_pretrained")
    return PROCESSOR_MAPPING_NAMES[model_type]


def load(
    name_or_path: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "auto",
    attn_implementation: str = "sdpa",
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
    verify_base: bool = True,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
    remote: bool | str = False,
) -> LoadedModel:
    """Load a model by alias, hub id or local folder, wrapped for nnsight.

    Args:
        name_or_path: An alias (``llava``, ``llava-next``, ``qwen2-vl``, ``qwen2.5-vl``,
            ``instructblip``), a hub id, a folder written by ``save_pretrained``, or the
            run folder of ``modprobe.finetune`` (base model + its LoRA adapter, merged).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available.
        dtype: ``"auto"`` (the checkpoint's), ``"float32"``, ``"bfloat16"``, ``"float16"``
            or a torch dtype.
        attn_implementation: Attention kernel; modprobe's capture works under the default
            ``"sdpa"`` and under ``"eager"``, which models with soft-capped attention
            (PaliGemma 2) need: transformers refuses SDPA for them, and ``load`` says so.
        trust_remote_code: Run code shipped with the checkpoint. Off unless you ask.
        local_files_only: Never touch the network (default: only for local folders).
        verify_base: For a fine-tuning run: refuse to merge its adapter when the base
            model's fingerprint differs from the one recorded at training (the base was
            retrained or replaced). ``False`` merges anyway.
        device_map: Shard the model over devices through accelerate instead of moving
            it to ``device``: ``"auto"`` (``"balanced"``, ``"sequential"``...) or a dict
            from module names to ``0``, ``"cuda:1"``, ``"cpu"`` or ``"disk"``
            (transformers' ``device_map``). The capture is exact under any map.
        max_memory: Memory per device for ``device_map="auto"``, e.g.
            ``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``.
        offload_folder: Where layers mapped to ``"disk"`` are kept (needed for them).
        remote: ``True``: build the model on the meta device (no weights here) and run
            every trace on NDIF through nnsight (API key: ``NDIF_API_KEY`` or nnsight's
            config); only hub ids NDIF hosts. ``"local"``: load the weights here and
            run every trace through nnsight's local simulation of a remote run, which
            serialises each trace as NDIF would (a check before a remote run).

    Returns:
        The :class:`LoadedModel`.

    Raises:
        ModelNotFoundError: unknown alias, missing folder, or weights neither cached nor
            downloadable.
        ModelLoadError: the weights are truncated or corrupt, or a pickle checkpoint
            holds more than plain tensors.
        AdapterError: the model is not an image-text-to-text model modprobe can adapt.
        ModprobeError: an unknown dtype, or a device this machine does not have.
    """
    from nnsight import NNsight
    from transformers import AutoModelForImageTextToText

    source = resolve_source(name_or_path)
    is_local = Path(source).is_dir()
    if remote:
        return _load_remote(source, os.fspath(name_or_path), remote, device=device,
                            dtype=dtype, attn_implementation=attn_implementation,
                            device_map=device_map)
    if is_local and (Path(source) / "adapter_config.json").is_file():
        return _load_adapter(Path(source), os.fspath(name_or_path), verify_base,
                             device=device, dtype=dtype, attn_implementation=attn_implementation,
                             trust_remote_code=trust_remote_code,
                             local_files_only=local_files_only)
    if isinstance(dtype, str):
        dtype = _DTYPES[check_dtype(dtype, option="dtype")]
    placement = _placement(device, device_map, max_memory, offload_folder)
    device = check_device(device, option="device") if device_map is None else None
    offline = is_local if local_files_only is None else local_files_only
    kwargs: dict[str, Any] = {"trust_remote_code": bool(trust_remote_code),
                              "local_files_only": offline}
    try:
        module = AutoModelForImageTextToText.from_pretrained(
            source, dtype=dtype, attn_implementation=attn_implementation, **placement,
            **kwargs)
        processor = load_processor(source, **kwargs)
    except OSError as err:
        if _is_corrupt_weights(err):
            raise ModelLoadError(_corrupt_message(source, err)) from err
        if is_local:
            raise ModelNotFoundError(
                f"could not load the model in folder {source!r}: {_first_line(err)}") from err
        raise ModelNotFoundError(
            f"could not load {source!r}: its files are not in the local Hugging Face cache "
            "and the hub could not be reached (offline, HF_HUB_OFFLINE=1, or a wrong id). "
            "Download it where you have network, or pass a local folder: "
            f"modprobe.load('/path/to/model'). (transformers said: {_first_line(err)})"
        ) from err
    except ModprobeError:
        raise
    except (ValueError, RuntimeError, pickle.UnpicklingError) as err:
        if _is_corrupt_weights(err):
            raise ModelLoadError(_corrupt_message(source, err)) from err
        if not isinstance(err, ValueError):
            raise
        message = str(err)
        if "Unrecognized configuration class" in message or "AutoModelForImageTextToText" in message:
            raise AdapterError(
                f"{source!r} is not an image-text-to-text model (AutoModelForImageTextToText "
                f"cannot load it), so modprobe has no image tokens to study: {_first_line(err)}"
            ) from err
        if "attention implementation" in message or "does not support" in message:
            raise AdapterError(
                f"transformers cannot run {source!r} with attn_implementation="
                f"{attn_implementation!r} ({_first_line(err)[:160]}). Load it with eager "
                f"attention: modprobe.load({os.fspath(name_or_path)!r}, "
                "attn_implementation='eager'); modprobe's capture is exact under eager."
            ) from err
        raise
    except Exception as err:  # safetensors' SafetensorError derives from Exception only
        if _is_corrupt_weights(err):
            raise ModelLoadError(_corrupt_message(source, err)) from err
        raise
    if device is not None:
        module.to(device)
    module.eval()
    adapter = adapter_for(module, processor)
    adapter.token_ids(module.config)  # fail early when there is no image token
    with warnings.catch_warnings():
        # BERT-style Q-Formers (InstructBLIP) have submodules named `output`; nnsight
        # renames them and warns once per module, which says nothing a user can act on.
        warnings.filterwarnings("ignore", message=r".*submodule named 'output'", category=UserWarning)
        wrapped = NNsight(module)
    return LoadedModel(model=wrapped, processor=processor, adapter=adapter,
                       name=os.fspath(name_or_path), source=source)


def _load_remote(source: str, name: str, remote: bool | str, *, device: Any, dtype: Any,
                 attn_implementation: str, device_map: Any) -> LoadedModel:
    """:func:`load` with ``remote=True`` (NDIF) or ``remote="local"`` (its simulation)."""
    if remote is not True and remote != "local":
        raise ModprobeError(f"remote must be True (NDIF) or 'local' (nnsight's local "
                            f"simulation of a remote run), got {remote!r}")
    if device_map is not None:
        raise ModprobeError("remote and device_map both given: a remote model is placed "
                            "by NDIF; drop device_map")
    folder = Path(source)
    if folder.is_dir() and (folder / "adapter_config.json").is_file():
        raise ModprobeError(f"{source!r} is a fine-tuning run folder: its adapter exists "
                            "only here, so it cannot run remotely; load it without remote=")
    if remote is True and folder.is_dir():
        raise ModprobeError(f"remote=True runs on NDIF, which only runs hub models it hosts; "
                            f"{source!r} is a local folder. Pass the hub id, or "
                            "remote='local' to check the traces here")
    from nnsight.modeling.transformers import TransformersModel

    if remote == "local":
        local = load(source, device=device, dtype=dtype, attn_implementation=attn_implementation)
        module, processor = local.module, local.processor
    else:
        processor = load_processor(source, trust_remote_code=False,
                                   local_files_only=False)
        module = source  # nnsight builds it on the meta device from the hub's config
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # VisionLanguageModel-era deprecation notes
        wrapped = TransformersModel(module, task="image-text-to-text", processor=processor)
    adapter = adapter_for(wrapped._module, processor)
    adapter.token_ids(wrapped._module.config)
    return LoadedModel(model=wrapped, processor=processor, adapter=adapter, name=name,
                       source=source, remote=remote)


def _placement(device: Any, device_map: Any, max_memory: Any,
               offload_folder: Any) -> dict[str, Any]:
    """``from_pretrained``'s placement arguments for a sharded load (empty without
    ``device_map``), refusing combinations that cannot mean anything."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ModprobeError("max_memory and offload_folder apply only with device_map "
                                "(e.g. device_map='auto'); add one or drop them")
        return {}
    if device is not None:
        raise ModprobeError("pass device or device_map, not both: device_map places every "
                            "layer itself (device_map='auto' or a dict of module -> device)")
    if not isinstance(device_map, (str, dict)):
        raise ModprobeError(f"device_map must be 'auto', 'balanced', 'sequential' or a dict "
                            f"of module names to devices, got {device_map!r}")
    if isinstance(device_map, dict) and "disk" in device_map.values() and \
            offload_folder is None:
        raise ModprobeError("device_map puts layers on 'disk': give offload_folder (a "
                            "folder where accelerate keeps their weights)")
    placement: dict[str, Any] = {"device_map": device_map}
    if max_memory is not None:
        placement["max_memory"] = max_memory
    if offload_folder is not None:
        placement["offload_folder"] = os.fspath(offload_folder)
    return placement


#: The device maps accelerate computes itself (``device_map="auto"`` and its variants).
DEVICE_MAP_NAMES = ("auto", "balanced", "balanced_low_0", "sequential")


def parse_device_map(text: str, option: str = "--device-map") -> str | dict[str, Any]:
    """A ``--device-map`` value: one of :data:`DEVICE_MAP_NAMES`, or a JSON object from
    module names to devices (``'{"model.vision_tower": 0, "lm_head": 1}'``).

    Raises:
        ModprobeError: neither, naming the option.
    """
    if text in DEVICE_MAP_NAMES:
        return text
    try:
        mapping = json.loads(text)
    except json.JSONDecodeError:
        mapping = None
    if not isinstance(mapping, dict) or not all(
            isinstance(v, (str, int)) and not isinstance(v, bool) for v in mapping.values()):
        raise ModprobeError(f"{option} must be one of {', '.join(DEVICE_MAP_NAMES)} or a JSON "
                            f"object of module names to devices (e.g. '{{\"lm_head\": 0}}'), "
                            f"got {text!r}")
    return mapping


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _is_corrupt_weights(err: BaseException) -> bool:
    """Whether ``err`` comes from unreadable weight files rather than from a bug."""
    name = type(err).__name__
    if name in ("SafetensorError", "UnpicklingError", "HeaderTooLarge", "HeaderTooSmall"):
        return True
    text = str(err)
    return any(marker in text for marker in (
        "Error while deserializing header", "Weights only load failed", "PytorchStreamReader",
        "invalid load key", "Unable to load weights", "unexpected EOF", "is truncated",
        "not a valid JSON", "Expecting value"))


def _corrupt_message(source: str, err: BaseException) -> str:
    if "Weights only load failed" in str(err) or isinstance(err, pickle.UnpicklingError):
        return (f"the weights in {source!r} are a pickle checkpoint holding more than plain "
                "tensors, which modprobe never unpickles (it could run arbitrary code); "
                "convert it to safetensors where you trust the source (save_pretrained "
                "writes safetensors by default)")
    return (f"the model files in {source!r} are truncated or corrupt ({_first_line(err)}); "
            "copy or download the checkpoint again")
