"""Every public op, one import line per family; also exported as ``convkit.<name>``.

Each op validates its arguments (convkit/_shapes.py), dispatches on the array type
(numpy -> convkit/cpu/, cupy -> the CUDA backend) and returns the same array type.
Arrays are NCHW (NCL for 1-D).
"""
from .ops.conv import *  # noqa: F401,F403
from .ops.conv import __all__ as _conv

__all__ = list(_conv)
