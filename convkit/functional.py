"""Every public op, one import line per family; also exported as ``convkit.<name>``.

Each op validates its arguments (convkit/_shapes.py), dispatches on the array type
(numpy -> convkit/cpu/, cupy -> the CUDA backend) and returns the same array type.
Arrays are NCHW (NCL for 1-D).
"""
from .ops import conv, dense, norm, pool, resample, transpose
from .ops.conv import *  # noqa: F401,F403
from .ops.dense import *  # noqa: F401,F403
from .ops.norm import *  # noqa: F401,F403
from .ops.pool import *  # noqa: F401,F403
from .ops.resample import *  # noqa: F401,F403
from .ops.transpose import *  # noqa: F401,F403

__all__ = [name for family in (conv, dense, norm, pool, resample, transpose) for name in family.__all__]
