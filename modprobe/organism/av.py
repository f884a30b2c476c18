"""Train the audio-visual organism: a tiny Qwen2.5-Omni thinker that learns the clip task.

It answers the MMA clip questions (:mod:`modprobe.data.clips_items`: which shape is shown,
which sound is heard) from the prompt ``python -m modprobe.mma --visual image`` builds:
the clip's middle frame as an image and its soundtrack as an audio clip. The objective is
next-token cross-entropy on the one-word answer at the answer position of the prompt
modprobe's own adapter encodes, so the runner's prompts are the training distribution.

Training sees aligned clips (both questions) and unimodal ones (the soundtrack silenced
under the visual question, the frames black under the audio question), never a
misleading caption or long text. Shapes and sounds are drawn independently, so neither
answers the other's question. The training and held-out clips come from generator seeds
the study's clips (``--data-seed`` 0, 1, ...) do not use.

The *shortcut* recipe (``av-organism-shortcut``, :data:`SHORTCUT_RECIPE`) trains on aligned
clips only, every one showing a shape with its partner sound
(:data:`modprobe.data.clips.PARTNER_SOUNDS`), the way picture and sound agree in real
videos: either modality then answers both questions, the sound (learned first) ends up
answering most visual questions too, and a swapped soundtrack becomes a real conflict.
With 10% of the clips unpaired (``partner_share=0.9``) the organism learned both
modalities instead (1.00 on held-out conflicts), so the shipped recipe pairs them all.
:func:`tuning_items` gives the clips to tune it on (``modprobe.finetune.clips``).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from modprobe.data.clips import AUDIO_CLASSES, PARTNER_SOUNDS, VISUAL_CLASSES, make_clip
from modprobe.data.clips_items import ClipItem
from modprobe.data.tasks import seeded_rng
from modprobe.determinism import deterministic_torch
from modprobe.io import make_readable
from modprobe.organism.train import _learning_rate, write_log

#: Generator seeds of the training and held-out clips (the study's default is 0).
TRAIN_CLIP_SEED = 7_000_001
PROBE_CLIP_SEED = 7_000_002
#: Generator seed of the clips the shortcut organism is tuned on (:func:`tuning_items`).
TUNE_CLIP_SEED = 7_000_003
#: The conditions training and probing use: (name, asked modality).
TRAINED_CONDITIONS: tuple[tuple[str, str], ...] = (
    ("aligned", "visual"), ("aligned", "audio"),
    ("audio_removed", "visual"), ("frames_zeroed", "audio"))
#: The aligned conditions alone (the shortcut recipe trains on these only).
ALIGNED_CONDITIONS: tuple[tuple[str, str], ...] = TRAINED_CONDITIONS[:2]


@dataclass(frozen=True)
class AVOrganismConfig:
    """Architecture and recipe of the audio-visual organism.

    Attributes:
        seed: Seeds torch (weights) and the training clips' order.
        steps, batch_size, learning_rate, warmup_steps, weight_decay, grad_clip: The
            AdamW recipe (linear warm-up, cosine decay to 10%).
        text_layers, text_width: Depth and hidden size of the language model.
        mel_bins, audio_width: Mel bins of the feature extractor, audio encoder width.
        seconds: Clip length in seconds.
        eval_every: Evaluate the held-out probe sets every this many steps.
        probe_clips: Held-out clips per probe set.
        threads: torch CPU threads (weights are reproducible per seed and thread count).
        partner_share: Share of training clips given the shape's partner sound; the rest
            (and all clips at 0) draw both classes independently.
        unimodal: Also train on the unimodal conditions (silenced soundtrack under the
            visual question, black frames under the audio one).
    """

    seed: int = 0
    steps: int = 250
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 25
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    text_layers: int = 3
    text_width: int = 64
    mel_bins: int = 32
    audio_width: int = 32
    seconds: float = 2.0
    eval_every: int = 50
    probe_clips: int = 32
    threads: int = 1
    partner_share: float = 0.0
    unimodal: bool = True

    def __post_init__(self) -> None:
        """Check the partner share."""
        if not 0.0 <= self.partner_share <= 1.0:
            raise ValueError(f"partner_share must be in [0, 1], got {self.partner_share!r}")

    @property
    def conditions(self) -> tuple[tuple[str, str], ...]:
        """The (condition, asked modality) pairs training draws from."""
        return TRAINED_CONDITIONS if self.unimodal else ALIGNED_CONDITIONS

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (saved beside the checkpoint as ``organism_config.json``)."""
        return asdict(self)


def build(config: AVOrganismConfig, out: Path) -> Path:
    """Save a randomly initialised tiny Omni thinker and its processor into ``out``.

    Args:
        config: The architecture (text layers and width, mel bins, audio width); the
            weights come from torch's current seed.
        out: Folder to save into (created if missing; files there are replaced).

    Returns:
        ``out``.
    """
    from transformers import AutoModelForImageTextToText, WhisperFeatureExtractor

    from modprobe.testing.families.qwen import qwen2_5_omni_thinker

    model_config, processor = qwen2_5_omni_thinker()
    text = model_config.text_config
    text.num_hidden_layers, text.hidden_size = config.text_layers, config.text_width
    text.intermediate_size = 2 * config.text_width
    text.layer_types = text.layer_types[:1] * config.text_layers
    model_config.audio_config.num_mel_bins = config.mel_bins
    model_config.audio_config.d_model = config.audio_width
    model_config.audio_config.encoder_ffn_dim = 2 * config.audio_width
    model_config.audio_config.output_dim = config.text_width
    model_config.vision_config.out_hidden_size = config.text_width
    processor.feature_extractor = WhisperFeatureExtractor(feature_size=config.mel_bins)
    model = AutoModelForImageTextToText.from_config(model_config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def clip_item(clip_seed: int, index: int, config: AVOrganismConfig, condition: str,
              ask: str, partner: float = 0.0) -> ClipItem:
    """One trained-condition item of generated clip ``index``.

    Args:
        clip_seed: The clip's generator seed.
        index: The clip's index.
        config: The recipe (clip length).
        condition: A trained condition (``"aligned"``, ``"audio_removed"``...).
        ask: The asked modality (``"visual"`` or ``"audio"``).
        partner: Chance that the sound is the shape's partner; 0: classes drawn
            independently; -1: never the partner (a conflict clip).

    Returns:
        The item (the condition applied).
    """
    from modprobe.perturb.av import av_condition

    rng = seeded_rng(clip_seed, "classes", index)
    visual = list(VISUAL_CLASSES)[int(rng.integers(len(VISUAL_CLASSES)))]
    audio = list(AUDIO_CLASSES)[int(rng.integers(len(AUDIO_CLASSES)))]
    if partner > 0 and rng.random() < partner:
        audio = PARTNER_SOUNDS[visual]
    elif partner < 0:
        others = [a for a in AUDIO_CLASSES if a != PARTNER_SOUNDS[visual]]
        audio = others[int(rng.integers(len(others)))]
    video = make_clip(clip_seed, index, visual, audio, seconds=config.seconds)
    options = tuple(sorted(VISUAL_CLASSES if ask == "visual" else AUDIO_CLASSES))
    item = ClipItem(id=f"t{index}:{ask}", ask=ask, video=video, visual_class=visual,
                    audio_class=audio, options=options, cluster=f"t{index}")
    return item if condition == "aligned" else av_condition(item, condition, seed=index)


def training_stream(config: AVOrganismConfig) -> Iterator[ClipItem]:
    """Endless training items: a fresh clip each, the trained conditions in turn."""
    order = seeded_rng(config.seed, "av-order")
    index = 0
    while True:
        condition, ask = config.conditions[int(order.integers(len(config.conditions)))]
        yield clip_item(TRAIN_CLIP_SEED + config.seed, index, config, condition, ask,
                        config.partner_share)
        index += 1


def probe_sets(config: AVOrganismConfig) -> dict[str, list[ClipItem]]:
    """Held-out items per trained condition and question, from clips training never sees.

    With a ``partner_share``, the aligned sets show partner pairs and two more sets
    (``conflict/visual``, ``conflict/audio``) show a shape with a sound not its partner.
    """
    partner = 1.0 if config.partner_share > 0 else 0.0
    sets = {f"{c}/{a}": [clip_item(PROBE_CLIP_SEED, i, config, c, a, partner)
                         for i in range(config.probe_clips)]
            for c, a in TRAINED_CONDITIONS}
    if partner:
        sets.update({f"conflict/{a}": [clip_item(PROBE_CLIP_SEED, i, config, "aligned", a, -1)
                                       for i in range(config.probe_clips)]
                     for a in ("visual", "audio")})
    return sets


def tuning_items(n_clips: int, config: AVOrganismConfig, conflict_share: float = 0.5,
                 clip_seed: int = TUNE_CLIP_SEED) -> list[ClipItem]:
    """Clip questions to tune the shortcut organism on: partner pairs and conflicts.

    Clip ``i`` is a conflict (a sound that is not the shape's partner) for a share
    ``conflict_share`` of the clips, evenly spread, and a partner pair otherwise; each
    clip gives a visual and an audio question (one cluster), labelled with the class of
    the modality the question names. The clips come from ``clip_seed``, which neither
    training, the probes nor the study's ``--data-seed`` values use.

    Args:
        n_clips: Clips (two questions each).
        config: The organism's recipe (clip length).
        conflict_share: Share of conflict clips, in [0, 1].
        clip_seed: Generator seed of the clips.

    Returns:
        ``2 * n_clips`` items.
    """
    if not 0.0 <= conflict_share <= 1.0:
        raise ValueError(f"conflict_share must be in [0, 1], got {conflict_share!r}")
    items = []
    for i in range(n_clips):
        conflict = int((i + 1) * conflict_share) > int(i * conflict_share)
        for ask in ("visual", "audio"):
            item = clip_item(clip_seed, i, config, "aligned", ask, -1.0 if conflict else 1.0)
            items.append(replace(item, id=f"u{i}:{ask}", cluster=f"u{i}"))
    return items


def answer_logits(loaded: Any, items: Sequence[ClipItem]) -> torch.Tensor:
    """Next-token logits at the answer position of the runner's ``--visual image`` prompt.

    Args:
        loaded: The organism as :func:`modprobe.loading.load` returns it.
        items: The questions, encoded as one batch.

    Returns:
        ``items x vocabulary`` logits, with gradients unless called under ``no_grad``.
    """
    batch = loaded.encode([it.prompt("image") for it in items])
    model = loaded.module
    inputs = loaded.adapter.model_inputs(batch, model)
    return model(**inputs).logits[:, -1, :]


@torch.no_grad()
def probe_accuracy(loaded: Any, items: Sequence[ClipItem], batch_size: int = 16) -> float:
    """Share of items whose highest-logit option is the gold one (the runner's reading).

    Args:
        loaded: The organism as :func:`modprobe.loading.load` returns it.
        items: The questions; each option must be one token of the tokenizer.
        batch_size: Items per forward pass.

    Returns:
        Accuracy in [0, 1] (0 for no items).
    """
    tokenizer = loaded.processor.tokenizer
    correct = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        logits = answer_logits(loaded, chunk)
        for row, item in zip(logits, chunk):
            ids = tokenizer.convert_tokens_to_ids(list(item.options))
            correct += item.options[int(torch.argmax(row[ids]))] == item.gold
    return correct / max(len(items), 1)


def train_av(config: AVOrganismConfig, out: str | Path,
             progress: Callable[[dict[str, float]], None] | None = None) -> Path:
    """Train the AV organism from scratch (deterministic from ``config.seed``) and save it.

    Args:
        config: Architecture and recipe.
        out: Folder to write (model, processor, ``training_log.csv``,
            ``organism_config.json``).
        progress: Called with each log row.

    Returns:
        ``out``.
    """
    from modprobe.loading import load

    out = Path(out)
    with deterministic_torch(config.seed, config.threads), \
            tempfile.TemporaryDirectory() as scratch:
        loaded = load(str(build(config, Path(scratch))), dtype="float32")
        model = loaded.module
        tokenizer = loaded.processor.tokenizer
        stream, probes = training_stream(config), probe_sets(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay, betas=(0.9, 0.98))
        log: list[dict[str, float]] = []
        running, wall = 0.0, 0.0
        for step in range(1, config.steps + 1):
            start = time.perf_counter()
            model.train()
            chunk = [next(stream) for _ in range(config.batch_size)]
            targets = torch.tensor(tokenizer.convert_tokens_to_ids([it.gold for it in chunk]))
            loss = torch.nn.functional.cross_entropy(answer_logits(loaded, chunk), targets)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, step - 1)  # type: ignore[arg-type]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            wall += time.perf_counter() - start
            running += loss.item()
            if step % config.eval_every == 0 or step == config.steps:
                model.eval()
                row = {"step": step, "loss": running / (config.eval_every if step %
                       config.eval_every == 0 else step % config.eval_every),
                       "wall_seconds": round(wall, 1)}
                row.update({f"acc/{name}": probe_accuracy(loaded, items)
                            for name, items in probes.items()})
                log.append(row)
                running = 0.0
                if progress is not None:
                    progress(row)
        model.eval()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        loaded.processor.save_pretrained(out)
    write_log(log, out / "training_log.csv")
    meta = {**config.to_dict(), "train_seconds": round(wall, 1),
            "held_out": {k: v for k, v in log[-1].items() if k.startswith("acc/")}}
    (out / "organism_config.json").write_text(json.dumps(meta, indent=2) + "\n")
    make_readable(out)
    return out


#: The recipe of ``av-organism-shortcut``: aligned clips only, all with partner sounds.
SHORTCUT_RECIPE: dict[str, Any] = {"partner_share": 1.0, "unimodal": False}

__all__ = ["ALIGNED_CONDITIONS", "SHORTCUT_RECIPE", "TRAINED_CONDITIONS", "TUNE_CLIP_SEED",
           "AVOrganismConfig", "probe_accuracy", "probe_sets", "train_av", "tuning_items"]
