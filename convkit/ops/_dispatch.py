"""Dispatch on the array type: numpy -> convkit.cpu.<family>, cupy -> convkit.gpu.<family>."""
from __future__ import annotations

import functools
import importlib

from .._shapes import array_module_name


@functools.cache
def _module(device: str, family: str):
    return importlib.import_module(f"convkit.{device}.{family}")


def backend(fn: str, x, family: str):
    """The backend module of an op family for x's array type (arguments already share it)."""
    return _module("gpu" if array_module_name(x) == "cupy" else "cpu", family)
