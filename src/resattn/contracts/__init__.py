"""Typed input contracts: what a model takes, stored with it (``meta["contract"]``), and the one
place that turns raw input into model input (``transform``).

``contract_from_meta`` also reads checkpoints written before contracts existed, from their
free-form ``meta["preprocessing"]`` dict.
"""

from __future__ import annotations

from ..errors import CheckpointError, ConfigError
from .image import IMAGE_MODES, ImageContract
from .waveform import WaveformContract

__all__ = ["Contract", "ImageContract", "WaveformContract", "contract_from_json",
           "contract_from_meta"]

Contract = WaveformContract | ImageContract
KINDS: dict[str, type[WaveformContract] | type[ImageContract]] = {
    "waveform": WaveformContract, "image": ImageContract,
}


def contract_from_json(d: dict) -> Contract:
    """The contract a ``to_json()`` dict describes, chosen by its ``kind``."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if not isinstance(kind, str) or kind not in KINDS:
        raise ConfigError(f"contract 'kind' must be one of {list(KINDS)}, got {kind!r}")
    return KINDS[kind].from_json(d)


def contract_from_meta(meta: dict, where: str = "checkpoint") -> Contract:
    """The contract of a checkpoint's metadata: ``meta["contract"]`` when present, else the
    legacy ``meta["preprocessing"]`` dict converted. ``where`` names the checkpoint in errors."""
    try:
        if meta.get("contract") is not None:
            return contract_from_json(meta["contract"])
        prep = meta.get("preprocessing")
        if isinstance(prep, dict) and "window_samples" in prep:
            return _legacy_waveform(prep, meta.get("class_names"))
        if isinstance(prep, dict) and "size" in prep:
            return _legacy_image(prep, meta.get("class_names"))
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a damaged record
        raise CheckpointError(f"{where}: its 'contract' record is damaged: "
                              f"{type(exc).__name__}: {exc}") from None
    raise CheckpointError(f"{where}: its metadata holds no 'contract', nor a 'preprocessing' "
                          "record with 'window_samples' (waveforms) or 'size' (images)")


# The legacy dict (resattn <= 8d8a8ca) recorded its fixed behaviour as prose ("channel order
# E,N,Z", "P pick at 25% of the window", "pixel / 255"): those map to the field defaults.
def _legacy_waveform(prep: dict, class_names: list[str] | None) -> WaveformContract:
    names = class_names or prep.get("class_names")
    return WaveformContract(
        window_samples=prep["window_samples"],
        sampling_rate=prep.get("sampling_rate_hz", 100.0),
        bandpass_hz=prep.get("bandpass_hz") or None,
        **({"class_names": names} if names else {}),
    )


def _legacy_image(prep: dict, class_names: list[str] | None) -> ImageContract:
    channels = prep.get("channels")
    mode = prep.get("mode") or ("L" if channels == 1 else "RGB")
    if channels is not None and IMAGE_MODES.get(mode) != channels:
        raise ConfigError(f"preprocessing field 'channels' is {channels!r} but 'mode' is "
                          f"{mode!r}; expected 1 with L or 3 with RGB")
    return ImageContract(size=prep["size"], mode=mode,
                         class_names=class_names or prep.get("class_names"))
