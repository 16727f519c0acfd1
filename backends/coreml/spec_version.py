"""The lowest Core ML specification version a model needs.

Core ML specification versions and the oldest OS that runs them:

    1 iOS 11    NeuralNetwork with rank-5 blobs (what the old Keras converter emitted)
    2 iOS 11.2  float16 weights, custom layers
    3 iOS 12
    4 iOS 13    ND layers (EXACT_ARRAY_MAPPING), updatable models
    5 iOS 14    3-D convolution and pooling
    6 iOS 15
    7 iOS 16

Each emitter records what it needs (``CoremlContext.require``); model-level
features add their own. Without ``minimum_deployment_target`` the spec version
is the largest requirement (1 when there is none). With it, the version is the
target's: a requirement above it is an error that names the layer, since the
model would not run on the OS asked for.
"""
from __future__ import annotations

from typing import Iterable

from kcc.backends.coreml.context import Requirement
from kcc.errors import ConversionError, OptionError

TARGETS: dict[str, int] = {
    "iOS11": 1, "iOS11.2": 2, "iOS12": 3, "iOS13": 4, "iOS14": 5, "iOS15": 6, "iOS16": 7,
    "macOS10.13": 1, "macOS10.13.2": 2, "macOS10.14": 3, "macOS10.15": 4, "macOS11": 5, "macOS12": 6,
    "macOS13": 7,
}
_BY_VERSION = {v: k for k, v in reversed(list(TARGETS.items())) if k.startswith("iOS")}
ND_VERSION = 4


def os_name(version: int) -> str:
    return _BY_VERSION.get(version, f"specification {version}")


def target_version(name: str | None) -> tuple[int | None, str | None]:
    """The spec version of a ``minimum_deployment_target`` name (case-insensitive, 'iOS13' or 'ios13')."""
    if name is None:
        return None, None
    text = str(getattr(name, "name", name)).replace(" ", "")
    for key, version in TARGETS.items():
        if key.lower() == text.lower():
            return version, key
    raise OptionError(f"minimum_deployment_target={name!r} is not known; use one of "
                      f"{', '.join(k for k in TARGETS if k.startswith('iOS'))}")


def lowest_version(requirements: Iterable[Requirement], target: int | None, target_name: str | None) -> int:
    """The spec version to write; ConversionError when a requirement exceeds the deployment target."""
    reqs = list(requirements)
    needed = max([r.version for r in reqs], default=1)
    if target is None:
        return needed
    too_new = [r for r in reqs if r.version > target]
    if too_new:
        worst = max(too_new, key=lambda r: r.version)
        raise ConversionError(
            f"minimum_deployment_target={target_name!r} (specification {target}) cannot hold this model: "
            f"{worst.what} needs specification {worst.version} ({os_name(worst.version)} or newer). "
            f"Raise minimum_deployment_target to {os_name(worst.version)} or change the model.")
    return max(target, needed)
