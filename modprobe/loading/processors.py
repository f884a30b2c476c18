"""Processors: ``AutoProcessor``, or an image-only one where torchvision is missing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modprobe.loading.errors import ModelNotFoundError


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
            """The processor from its sub-processors, with None for the video processor.

            from_pretrained loads the listed sub-processors (no video processor) and
            passes them positionally: None goes where the parent's __init__ expects one.

            Args:
                args: The sub-processors, in the order of the listed attributes.
                processor_dict: The processor's saved configuration.
                **kwargs: transformers' loading options, passed on.

            Returns:
                The processor.
            """
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

