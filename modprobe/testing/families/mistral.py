"""Mistral 3 tiny model, with a stand-in Pixtral processor."""

from __future__ import annotations

from typing import Any

import torch

from modprobe.testing.families.common import (
    IMAGE_SIZE,
    PATCH_SIZE,
    TEXT,
    family_tokenizer,
    flatten_images,
    token_config_ids,
)

# --------------------------------------------------------------------------- Mistral 3
#: mistralai/Mistral-Small-3.1-24B-Instruct: ``<s>[INST][IMG]{text}[/INST]``, BOS written by
#: the template.
MISTRAL3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}[INST]"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}[IMG]"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}"
    "[/INST]{% else %}{{ message['content'] }}</s>{% endif %}{% endfor %}"
)


def _stand_in_pixtral_processor(tokenizer: Any, merge: int) -> Any:
    """Stand-in for ``PixtralProcessor`` (which transformers builds only with torchvision).

    Its layout is Pixtral's: an image resized (aspect kept, longest edge at most
    ``2 * IMAGE_SIZE``) to multiples of ``PATCH_SIZE * merge`` pixels becomes ``rows``
    runs of ``cols`` ``[IMG]`` tokens, each ended by ``[IMG_BREAK]`` except the last,
    ended by ``[IMG_END]``; pixel values are padded to the batch's largest image and
    ``image_sizes`` gives each image's size.
    """
    import math

    import numpy as np
    from transformers import BatchFeature, ProcessorMixin

    unit = PATCH_SIZE * merge

    class PixtralProcessor(ProcessorMixin):  # the stand-in keeps the real class name
        image_token = "[IMG]"

        def __init__(self, tokenizer: Any = None, chat_template: str | None = None) -> None:
            super().__init__(tokenizer, chat_template=chat_template)

        def __call__(self, text: Any = None, images: Any = None, videos: Any = None,
                     **kwargs: Any) -> Any:
            texts = [text] if isinstance(text, str) else list(text)
            flat = flatten_images(images) if images is not None else []
            arrays, expansions = [], []
            for img in flat:
                w, h = img.size
                scale = min(1.0, 2 * IMAGE_SIZE / max(w, h))
                rows = max(1, math.ceil(h * scale / unit))
                cols = max(1, math.ceil(w * scale / unit))
                resized = img.convert("RGB").resize((cols * unit, rows * unit))
                arrays.append(np.asarray(resized, dtype=np.float32) / 127.5 - 1.0)
                runs = ["[IMG]" * cols + "[IMG_BREAK]"] * rows
                runs[-1] = runs[-1][: -len("[IMG_BREAK]")] + "[IMG_END]"
                expansions.append("".join(runs))
            it = iter(expansions)
            texts = ["".join(part if i == 0 else next(it) + part
                             for i, part in enumerate(t.split("[IMG]"))) for t in texts]
            keys = ("padding", "add_special_tokens", "return_tensors", "padding_side")
            tok_kwargs = {k: v for k, v in kwargs.items() if k in keys}
            tok_kwargs.setdefault("return_tensors", "pt")
            data = dict(self.tokenizer(texts, **tok_kwargs))
            if arrays:
                height = max(a.shape[0] for a in arrays)
                width = max(a.shape[1] for a in arrays)
                pixels = np.zeros((len(arrays), 3, height, width), dtype=np.float32)
                for i, a in enumerate(arrays):
                    pixels[i, :, : a.shape[0], : a.shape[1]] = a.transpose(2, 0, 1)
                data["pixel_values"] = torch.from_numpy(pixels)
                data["image_sizes"] = torch.tensor([a.shape[:2] for a in arrays])
            return BatchFeature(data=data)

    return PixtralProcessor(tokenizer=tokenizer, chat_template=MISTRAL3_TEMPLATE)


def mistral3() -> tuple[Any, Any]:
    """The tiny Mistral 3 model's config and processor.

    Mistral 3 (Pixtral vision, Mistral LM): image rows with break tokens, counts that
    follow the aspect ratio, ``image_sizes``, BOS written by the template; stand-in
    processor (the real one needs torchvision).
    """
    from transformers import Mistral3Config

    tok = family_tokenizer(("<s>", "</s>", "<pad>", "[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]",
                      "[/INST]"), bos="<s>", eos="</s>", pad="<pad>")
    text = {"model_type": "mistral", **TEXT, **token_config_ids(tok), "sliding_window": None}
    vision = {"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 2 * IMAGE_SIZE,
              "patch_size": PATCH_SIZE, "head_dim": 8}
    config = Mistral3Config(text_config=text, vision_config=vision, spatial_merge_size=2,
                            image_token_index=tok.convert_tokens_to_ids("[IMG]"),
                            tie_word_embeddings=False)
    return config, _stand_in_pixtral_processor(tok, merge=2)
