"""The benchmark model: LLaVA-1.5's attention geometry with a CPU-sized hidden width.

What the capture's cost depends on is kept from the real model: 32 decoder layers, 32
query heads (no grouped-query attention), ~640 tokens of which 576 are image tokens, and
LLaVA's real vocabulary (32064 rows, so the logit lens costs what it costs at 7B scale
relative to the layer count). What only scales every variant alike is shrunk: the head
width (8, so hidden 256) and the MLP (512). The model is a real
``LlavaForConditionalGeneration`` built from :func:`modprobe.testing.tiny_config`, saved
with ``save_pretrained`` and loaded by :func:`modprobe.load`, the path users run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: LLaVA-1.5's vocabulary size (Vicuna's 32000 + image and padding tokens, rounded).
LLAVA_VOCAB_SIZE = 32064
#: Vision patch side of LLaVA-1.5's CLIP ViT-L/14 (a 336px image gives 24x24 = 576 tokens).
LLAVA_PATCH_SIZE = 14
#: Text tokens LLaVA-1.5 prompts typically carry around the image (chat scaffold + question).
TEXT_TOKENS = 64
#: The question every benchmark row asks (every word is one token of the tiny tokenizer).
QUESTION = "What color is the circle ? Please answer with one word ."
#: Filler word padding the textual context up to the requested token count.
FILLER_WORD = "the"
#: Candidate answers whose lens logits the capture variants read.
CANDIDATE_WORDS: tuple[str, ...] = ("red", "blue")


@dataclass(frozen=True)
class BenchGeometry:
    """Shape of the benchmark model and of its input batch.

    Attributes:
        layers: Decoder layers (LLaVA-1.5-7B: 32).
        heads: Query (= key/value) heads per layer (LLaVA-1.5-7B: 32).
        hidden: Residual width; the head width is ``hidden // heads``.
        intermediate: MLP width.
        tokens: Tokens per row (LLaVA-1.5 with one image: ~640; LLaVA-NeXT: ~2,900).
        batch: Rows per batch (identical rows, so no padding).
        vocab: Vocabulary size (LLaVA's 32064 keeps the lens cost honest).
    """

    layers: int = 32
    heads: int = 32
    hidden: int = 256
    intermediate: int = 512
    tokens: int = 640
    batch: int = 1
    vocab: int = LLAVA_VOCAB_SIZE

    def __post_init__(self) -> None:
        """Refuse a width that does not split into even-width heads."""
        if self.hidden % self.heads:
            raise ValueError(f"--hidden {self.hidden} is not a multiple of --heads {self.heads}")
        if self.hidden // self.heads % 2:
            raise ValueError(f"head width {self.hidden // self.heads} must be even (rotary)")
        if min(self.layers, self.heads, self.tokens, self.batch) < 1:
            raise ValueError("layers, heads, tokens and batch must be positive")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads

    @property
    def image_grid(self) -> int:
        """Side of the square grid of image tokens.

        The largest square leaving at least ``TEXT_TOKENS`` text tokens (half the row
        for short rows): 24 (576 image tokens) at 640 tokens, 53 (2,809) at 2,900.
        """
        text = min(TEXT_TOKENS, self.tokens // 2)
        return max(1, math.isqrt(self.tokens - text))

    @property
    def image_tokens(self) -> int:
        """Image tokens per row (the patch grid, squared)."""
        return self.image_grid**2

    @property
    def image_size(self) -> int:
        """Pixel side of the benchmark images (one patch per image token)."""
        return self.image_grid * LLAVA_PATCH_SIZE

    def describe(self) -> str:
        """One line naming the geometry, e.g. for the benchmark's header."""
        return (f"{self.layers} layers x {self.heads} heads (head_dim {self.head_dim}, hidden "
                f"{self.hidden}, mlp {self.intermediate}), vocab {self.vocab}, batch {self.batch} x "
                f"{self.tokens} tokens ({self.image_tokens} image)")


def bench_config(geometry: BenchGeometry, tokenizer: Any) -> Any:
    """The ``LlavaConfig`` of the benchmark model (tiny CLIP tower, LLaVA-shaped LM).

    Args:
        geometry: Layers, heads, widths and image size.
        tokenizer: The tokenizer whose vocabulary and special ids the config uses.

    Returns:
        The config.
    """
    from modprobe.testing import tiny_config

    config = tiny_config(
        "llava", tokenizer, hidden_size=geometry.hidden, intermediate_size=geometry.intermediate,
        num_hidden_layers=geometry.layers, num_attention_heads=geometry.heads,
        num_key_value_heads=geometry.heads, head_dim=geometry.head_dim,
        max_position_embeddings=max(4096, 2 * geometry.tokens))
    # Token ids past the tokenizer's words exist only in the embedding and the unembedding,
    # which is all the vocabulary size changes for the cost of a forward or a lens.
    config.text_config.vocab_size = geometry.vocab
    config.vision_config.image_size = geometry.image_size
    config.vision_config.patch_size = LLAVA_PATCH_SIZE
    config.image_seq_length = geometry.image_tokens
    return config


def build_bench_model(geometry: BenchGeometry, out_dir: str | os.PathLike[str], seed: int = 0) -> Path:
    """Build the random-weight benchmark model and its processor into ``out_dir``.

    Args:
        geometry: The model's shape.
        out_dir: The folder written.
        seed: Seed of the random weights.

    Returns:
        The folder (``modprobe.load(folder)`` loads it).
    """
    from transformers import AutoModelForImageTextToText

    from modprobe.testing import build_llava_processor, llama_tokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = llama_tokenizer()
    processor = build_llava_processor(
        tokenizer, image_size=geometry.image_size, patch_size=LLAVA_PATCH_SIZE)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(bench_config(geometry, tokenizer)).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    del model
    return out


def bench_batch(loaded: Any, geometry: BenchGeometry) -> dict[str, torch.Tensor]:
    """An encoded batch of ``geometry.batch`` identical rows of exactly ``geometry.tokens`` tokens.

    Each row is one image and a question, with a filler context that brings the row to
    the requested length.

    Args:
        loaded: The benchmark model.
        geometry: Rows and tokens per row.

    Returns:
        The encoded batch.

    Raises:
        ValueError: when the question alone is longer than the requested row.
    """
    from PIL import Image

    from modprobe.adapters.base import Prompt

    image = Image.new("RGB", (geometry.image_size, geometry.image_size), (200, 30, 30))

    def encode(filler: int, question: str = QUESTION) -> dict[str, torch.Tensor]:
        """Encode the batch.

        Args:
            filler: Filler words of the context (0: no context).
            question: The question of every row.

        Returns:
            The encoded batch.
        """
        context = " ".join([FILLER_WORD] * filler) if filler else None
        return loaded.encode([Prompt(question, context=context, images=[image])] * geometry.batch)

    bare_length = int(encode(0)["input_ids"].shape[1])
    missing = geometry.tokens - bare_length
    if missing < 0:
        raise ValueError(
            f"--tokens {geometry.tokens} cannot hold the {geometry.image_tokens} image tokens and "
            f"the question ({bare_length} tokens without context); ask for more tokens")
    if missing == 1:
        # A context of n words adds n + 1 tokens (a newline before the question), so one
        # missing token goes into the question instead.
        batch = encode(0, f"{QUESTION} {FILLER_WORD}")
    else:
        batch = encode(max(missing - 1, 0))
    assert batch["input_ids"].shape[1] == geometry.tokens, batch["input_ids"].shape
    return batch


def candidate_ids(loaded: Any) -> list[int]:
    """Token ids of :data:`CANDIDATE_WORDS` in the benchmark tokenizer."""
    return [int(i) for i in loaded.tokenizer.convert_tokens_to_ids(list(CANDIDATE_WORDS))]


def main(argv: list[str] | None = None) -> int:
    """``python -m modprobe.bench.geometry OUT_DIR GEOMETRY_JSON``: write the model.

    The benchmark runs this in a child process (:func:`modprobe.bench.capture.build_model`).
    """
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        # Not a command: the benchmark runs it in a child process.
        print("modprobe.bench.geometry is internal (the benchmarks run it as "
              "'python -m modprobe.bench.geometry OUT_DIR GEOMETRY_JSON'); use "
              "'modprobe bench --help'", file=sys.stderr)
        return 0 if args in (["-h"], ["--help"]) else 2
    build_bench_model(BenchGeometry(**json.loads(args[1])), args[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
