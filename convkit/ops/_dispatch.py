"""Dispatch on the array type: numpy -> convkit.cpu.<family>, cupy -> convkit.gpu.<family>."""
from __future__ import annotations

import importlib

from .._shapes import array_module_name


def backend(fn: str, x, family: str):
    """The backend module of an op family for x's array type (arguments already share it)."""
    if array_module_name(x) == "cupy":
        return importlib.import_module(f"convkit.gpu.{family}")
    return importlib.import_module(f"convkit.cpu.{family}")
