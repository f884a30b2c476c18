"""Conflict datasets: the color-recognition generator (paper and lowres variants), the item
schema and its validator. See ``docs/data.md``.

Never imports torch: datasets are plain JSON lines and PNG files.
"""

from modprobe.data.dataset import CONDITIONS, Dataset, load_dataset, write_dataset
from modprobe.data.generate import GENERATOR_VERSION, VARIANTS, generate_colors
from modprobe.data.lowres import (
    LOWRES_SHAPES,
    LOWRES_TEXT_TIERS,
    LOWRES_TIERS,
    LowresImage,
    LowresItem,
    LowresTier,
    TrainingExample,
    iter_training_examples,
    lowres_vocabulary,
    render_lowres,
    sample_lowres_item,
    words,
)
from modprobe.data.palette import COLORS
from modprobe.data.schema import GROUPS, DatasetError, FieldError, Item

__all__ = [
    "COLORS", "CONDITIONS", "GENERATOR_VERSION", "GROUPS", "LOWRES_SHAPES",
    "LOWRES_TEXT_TIERS", "LOWRES_TIERS", "VARIANTS", "Dataset", "DatasetError", "FieldError",
    "Item", "LowresImage", "LowresItem", "LowresTier", "TrainingExample", "generate_colors",
    "iter_training_examples", "load_dataset", "lowres_vocabulary", "render_lowres",
    "sample_lowres_item", "words", "write_dataset",
]
