"""cupy.cuda for the emulator: one device (0), the null stream, events timed on the host."""
from __future__ import annotations

import time

from . import compiler, runtime


class Device:
    """cupy.cuda.Device(i): only device 0 exists."""

    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)
        if self.id != 0:
            raise runtime.CUDARuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")
        self.compute_capability = "80"

    def use(self):
        pass

    def synchronize(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id} (emulated)>"


class Stream:
    """A stream; launches run synchronously, so there is nothing to wait for."""

    null: "Stream"

    def __init__(self, null=False, non_blocking=False, ptr=0):
        self.ptr = ptr

    def synchronize(self):
        pass

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


Stream.null = Stream(null=True)


def get_current_stream():
    return Stream.null


class Event:
    """An event records the host clock (launches are synchronous)."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.time = None

    def record(self, stream=None):
        self.time = time.perf_counter()

    def synchronize(self):
        pass

    @property
    def done(self):
        return True


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events."""
    if start.time is None or end.time is None:
        raise runtime.CUDARuntimeError("cudaErrorInvalidResourceHandle: event not recorded")
    return (end.time - start.time) * 1e3
