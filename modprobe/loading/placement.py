"""Device maps: sharding a model over devices through accelerate."""

from __future__ import annotations

import json
import os
from typing import Any

from modprobe.errors import ModprobeError


def placement_kwargs(device: Any, device_map: Any, max_memory: Any,
                     offload_folder: Any) -> dict[str, Any]:
    """``from_pretrained``'s placement arguments for a sharded load.

    Args:
        device: The ``device`` :func:`modprobe.load` was given (None with a map).
        device_map: ``"auto"`` and its variants, a dict of module names to devices, or
            None (no sharding).
        max_memory: Memory per device for an automatic map, or None.
        offload_folder: Where layers mapped to ``"disk"`` are kept, or None.

    Returns:
        ``device_map``, ``max_memory`` and ``offload_folder`` as given, or an empty dict
        without ``device_map``.

    Raises:
        ModprobeError: combinations that cannot mean anything (a device and a map, memory
            limits without a map, layers on disk without a folder).
    """
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
    """Parse a ``--device-map`` value.

    Args:
        text: One of :data:`DEVICE_MAP_NAMES`, or a JSON object from module names to
            devices (``'{"model.vision_tower": 0, "lm_head": 1}'``).
        option: The option named in the error.

    Returns:
        The name, or the dict of module names to devices.

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

