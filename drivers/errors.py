"""One vocabulary of device errors.

Every device boundary (serial port, TCP printer socket, payment terminal) turns foreign exceptions
(``serial.SerialException``, ``OSError``, ``trio.BrokenResourceError``, a hang-up) into these, each with
a short human message and a stable ``code`` the register and the back office can act on.
"""

from __future__ import annotations


class DeviceError(Exception):
    """Base of all expected device failures. Actors catch this, publish health down and retry."""

    code = "device_error"

    def __init__(self, message: str, *, device: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.device = device

    def __str__(self) -> str:
        return f"{self.device}: {self.message}" if self.device else self.message


class DeviceDisconnected(DeviceError):
    """The device is gone: unplugged, port vanished, peer closed, hang-up, or it never opened."""

    code = "device_disconnected"


class DeviceTimeout(DeviceError):
    """The device is connected but did not answer in time."""

    code = "device_timeout"


class DeviceProtocolError(DeviceError):
    """The device answered with bytes that do not parse in its protocol."""

    code = "device_protocol_error"
