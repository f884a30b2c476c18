"""Shared sizes and tokenizers of the tiny family models."""

from __future__ import annotations

from typing import Any

from modprobe.testing.tokenizer import DEFAULT_WORDS, word_level_tokenizer

#: Side of the images the tiny vision towers see, and their patch side.
IMAGE_SIZE = 32
PATCH_SIZE = 8
#: Words of the chat scaffolds of these families (one token each).
SCAFFOLD_WORDS = ("model", "Assistant", "User", "<", ">", "|", "end", "of", "text")

TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "max_position_embeddings": 1024, "tie_word_embeddings": False}

SIGLIP = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}



def family_tokenizer(specials: tuple[str, ...], roles: dict[str, str] | None = None,
               bos: str | None = "<bos>", add_bos: bool = True, eos: str = "<eos>",
               pad: str = "<pad>") -> Any:
    """A word-level tokenizer with the shared vocabulary and a family's special tokens.

    Args:
        specials: The family's special tokens (image, role and turn markers).
        roles: Named roles of special tokens (``{"image_token": "<image>"}``) that
            processors read off the tokenizer.
        bos: The BOS token (None: none).
        add_bos: Whether encoding prepends BOS.
        eos: The EOS token.
        pad: The padding token.

    Returns:
        The tokenizer.
    """
    return word_level_tokenizer(
        (*DEFAULT_WORDS, *SCAFFOLD_WORDS), specials, bos_token=bos, eos_token=eos,
        pad_token=pad, add_bos=add_bos, extra_special_tokens=roles)


def token_config_ids(tokenizer: Any) -> dict[str, Any]:
    """The config fields a tokenizer fixes: vocabulary size and pad, BOS and EOS ids."""
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>",
                    "<|image|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                    "<|python_tag|>")


def llama3_tokenizer(roles: dict[str, str] | None = None,
                      extra: tuple[str, ...] = ()) -> Any:
    """A family tokenizer with Llama 3's special tokens (BOS, end of turn, padding).

    Args:
        roles: Named roles of special tokens that processors read off the tokenizer.
        extra: More special tokens of the family.

    Returns:
        The tokenizer.
    """
    return family_tokenizer((*LLAMA3_SPECIALS, *extra), roles, bos="<|begin_of_text|>",
                      eos="<|eot_id|>", pad="<|finetune_right_pad_id|>")



def flatten_images(images: Any) -> list[Any]:
    """The images of a (nested) list of images, in order."""
    if isinstance(images, (list, tuple)):
        return [img for item in images for img in flatten_images(item)]
    return [images]
