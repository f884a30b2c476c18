"""Perturbations of the task-irrelevant modality: pure functions of (item, seed).

The one place where modprobe perturbs inputs: the interference runner
(``python -m modprobe.interference``), the fine-tuning trainer and users all call this.

**Items.** An item is a :class:`modprobe.data.tasks.TaskItem`: ``id``, ``question``,
``answer`` (gold), ``relevant`` (``"image"`` or ``"text"``: the modality holding the
answer), optional ``image`` (PIL), ``context`` (text before the question), ``options``
(multiple choice when ``format="choice"``), ``subject`` (the asked object), ``cluster``.
``item.prompt()`` is the model input (a :class:`modprobe.Prompt`); ``item.read(answer)``
maps a model's answer to a category (an option, or ``"unreadable"``), ``item.gold()``
is the gold category and ``item.target()`` the answer to train on (the option letter for
multiple choice, else the gold answer). Task folders load with :func:`modprobe.data.tasks.load_tasks`; the
color world's tasks come from :func:`modprobe.data.color_tasks.color_task_items`.

**Apply one by name.** ::

    from modprobe.perturb import perturb, perturbations, processor_image_size

    perturbations()                 # {"UF": "text", "MD": "text", "OCR": "text",
                                    #  "RP": "image", "RI": "image", "FB": "image", "FW": "image"}
    perturbations("text")           # the ones for image-heavy items (relevant="image")
    bad = perturb(item, "MD", seed=0)            # a new TaskItem; item is unchanged
    bad = perturb(item, "RP", seed=0, size=processor_image_size(lm.processor))
    clean_prompt, perturbed_prompt = item.prompt(), bad.prompt()     # a training pair

Same ``(item, name, seed, options)``, same bytes, in any process (the random stream is
seeded from ``(seed, name, item.id)``). A perturbation only changes the item's
*irrelevant* modality: text ones (UF, MD, OCR) prepend to ``context`` (the perturbed
span is the description, ``Perturbation.span == "context"``); image ones (RP, RI, FB, FW)
replace or add ``image`` (span ``"image"``). Perturbing the relevant modality raises
:class:`PerturbationError`; :func:`applicable` lists the names that fit an item. Every
perturbation accepts ``size=`` (text ones ignore it), so one call fits all names; an
option a perturbation does not take is an error naming the ones it does.

=====  =====  ==========================================================================
name   what   options
=====  =====  ==========================================================================
UF     text   unrelated scientific facts: ``sentences=3``, ``bank=`` (list of sentences)
MD     text   a misleading description naming a wrong option, never the gold:
              ``template=`` (default: the item's ``misleading_template``)
OCR    text   OCR-like noise text: ``words=16``
RP     image  random pixels: ``size=(w, h)``
RI     image  a real irrelevant image: ``folder=`` (else a generated scene without the
              asked object), ``size=``
FB     image  full black canvas: ``size=``
FW     image  full white canvas: ``size=``
=====  =====  ==========================================================================

**The clean input of text-heavy items.** ``text_baseline(item, "noise", seed, size)``
gives a text-heavy item without an image paper 003's default visual input, a random-noise
image (``"none"``: no image, the older baseline); RI, FB and FW replace it.

**Your own.** ``register_perturbation("blur", "image", fn)`` with
``fn(item, rng, **options) -> TaskItem`` drawing randomness only from the numpy
``rng`` it is given; it is then usable by name everywhere (``--perturb blur``); ``unregister_perturbation``
removes it.
"""

from modprobe.perturb.baseline import (
    DEFAULT_TEXT_BASELINE,
    TEXT_BASELINES,
    check_text_baseline,
    default_perturbations,
    text_baseline,
)
from modprobe.perturb.image import (
    DEFAULT_SIZE,
    check_ri,
    full_black,
    full_white,
    irrelevant_image,
    processor_image_size,
    random_pixels,
    scene_without,
    usable_images,
)
from modprobe.perturb.registry import (
    MODALITIES,
    Perturbation,
    PerturbationError,
    applicable,
    canonical_name,
    check_items_perturbable,
    check_perturbation,
    draw_seeds,
    get_perturbation,
    perturb,
    perturbation_names,
    perturbations,
    perturbed_span,
    register_perturbation,
    unregister_perturbation,
)
from modprobe.perturb.text import FACTS, misleading_description, ocr_noise, unrelated_facts

register_perturbation("UF", "text", unrelated_facts, "unrelated scientific facts prepended")
register_perturbation("MD", "text", misleading_description,
                      "a misleading description naming a wrong option")
register_perturbation("OCR", "text", ocr_noise, "OCR-like noise text prepended")
register_perturbation("RP", "image", random_pixels, "random pixels")
register_perturbation("RI", "image", irrelevant_image,
                      "a real irrelevant image (folder, or a generated scene)", check=check_ri)
register_perturbation("FB", "image", full_black, "a full black canvas")
register_perturbation("FW", "image", full_white, "a full white canvas")

#: The built-in perturbations, in the paper's order (text ones, then image ones).
BUILTIN: tuple[str, ...] = ("UF", "MD", "OCR", "RP", "RI", "FB", "FW")

__all__ = [
    "BUILTIN",
    "DEFAULT_SIZE",
    "DEFAULT_TEXT_BASELINE",
    "FACTS",
    "MODALITIES",
    "TEXT_BASELINES",
    "Perturbation",
    "PerturbationError",
    "applicable",
    "canonical_name",
    "check_items_perturbable",
    "check_perturbation",
    "check_ri",
    "check_text_baseline",
    "default_perturbations",
    "draw_seeds",
    "full_black",
    "full_white",
    "get_perturbation",
    "irrelevant_image",
    "misleading_description",
    "ocr_noise",
    "perturb",
    "perturbation_names",
    "perturbations",
    "perturbed_span",
    "processor_image_size",
    "random_pixels",
    "register_perturbation",
    "scene_without",
    "text_baseline",
    "unregister_perturbation",
    "unrelated_facts",
    "usable_images",
]
