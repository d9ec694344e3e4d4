"""Scale protocols, selected by name from the device configuration (data, not code)."""

from __future__ import annotations

from drivers.scales.ad import ADCodec
from drivers.scales.base import (
    CommandReply,
    FrameError,
    ScaleCodec,
    ScaleEvent,
    SerialDefaults,
    WeightFrame,
    to_mg,
)
from drivers.scales.mt_sics import MTSICSCodec
from drivers.scales.nci import NCICodec
from drivers.scales.ohaus import OhausCodec

PROTOCOLS: dict[str, type[ScaleCodec]] = {
    ADCodec.name: ADCodec,
    MTSICSCodec.name: MTSICSCodec,
    NCICodec.name: NCICodec,
    OhausCodec.name: OhausCodec,
}


def codec_for(protocol: str) -> ScaleCodec:
    """A fresh codec for ``"ad"``, ``"mt-sics"``, ``"nci"`` or ``"ohaus"``; ValueError names the choices."""
    try:
        return PROTOCOLS[protocol.strip().lower()]()
    except KeyError:
        raise ValueError(
            f"unknown scale protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}"
        ) from None


__all__ = [
    "PROTOCOLS",
    "CommandReply",
    "FrameError",
    "ScaleCodec",
    "ScaleEvent",
    "SerialDefaults",
    "WeightFrame",
    "codec_for",
    "to_mg",
]
