"""Conflict datasets and interference tasks, as JSON lines and PNG files.

The color-recognition generator (paper and lowres variants), the item schema and its
validator (``docs/data.md``); task items for modality interference (open answer and
multiple choice, the color world's image-heavy and text-heavy tasks; see
``docs/interference.md``).

Never imports torch: datasets are plain JSON lines and PNG files.
"""

from modprobe.data.color_tasks import color_task_items, generate_color_tasks
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
from modprobe.data.tasks import UNREADABLE, TaskItem, TaskSet, load_tasks, read_choice

__all__ = [
    "COLORS",
    "CONDITIONS",
    "GENERATOR_VERSION",
    "GROUPS",
    "LOWRES_SHAPES",
    "LOWRES_TEXT_TIERS",
    "LOWRES_TIERS",
    "UNREADABLE",
    "VARIANTS",
    "Dataset",
    "DatasetError",
    "FieldError",
    "Item",
    "LowresImage",
    "LowresItem",
    "LowresTier",
    "TaskItem",
    "TaskSet",
    "TrainingExample",
    "color_task_items",
    "generate_color_tasks",
    "generate_colors",
    "iter_training_examples",
    "load_dataset",
    "load_tasks",
    "lowres_vocabulary",
    "read_choice",
    "render_lowres",
    "sample_lowres_item",
    "words",
    "write_dataset",
]
