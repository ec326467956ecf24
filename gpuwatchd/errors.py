"""The project's error classes; every vendor error is mapped into one of these.

Links (``gpuwatchd.links``) catch the library's own exceptions (``pynvml.NVMLError_*``,
python-ipmi completion codes, redfish HTTP errors) and raise exactly one of the classes
below, so collectors and the controller decide on a handful of meanings, not on vendor codes.
"""

from __future__ import annotations


class GpuwatchdError(Exception):
    """Base class of every error raised on purpose by gpuwatchd."""


class ConfigError(GpuwatchdError):
    """The configuration file is invalid; the message names file, line and key."""


class Unsupported(GpuwatchdError):
    """The device does not have this reading or command; the value is absent, not zero.

    NVML ``NOT_SUPPORTED``/``FUNCTION_NOT_FOUND``, IPMI completion codes ``0xc1``/``0xd5``.
    Permanent: do not ask again until re-init.
    """


class Refused(GpuwatchdError):
    """The device understood the request and said no (a fact, not a transport failure).

    ``code`` is the vendor code: IPMI ``0xd4`` (not allowed), ``0xcc`` (bad argument),
    NVML ``NO_PERMISSION``, HTTP 401/403.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class Transient(GpuwatchdError):
    """No answer or a passing fault (timeout, no reply, HTTP 5xx): retry, conclude nothing."""


class Lost(GpuwatchdError):
    """The device or its library is gone (GPU lost, driver unloaded, session dead): re-init.

    NVML ``GPU_IS_LOST``, ``UNINITIALIZED``, ``DRIVER_NOT_LOADED``, ``LIB_RM_VERSION_MISMATCH``,
    ``GPU_NOT_FOUND``; a BMC session that can no longer be used.
    """


class NotInstalled(Lost):
    """The library itself is absent (no ``libnvidia-ml.so.1``): nothing to re-init soon."""


class DeadlineExceeded(Transient):
    """A hardware call did not return within its deadline; its input is stale."""
