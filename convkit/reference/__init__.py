"""Slow, obviously-correct NumPy references, one module per op family.

Plain loops straight from the definitions; independent of the fast paths (they share only
convkit/_shapes.py). The tests compare every backend against these.
"""
from .conv import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .resample import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .dense import *  # noqa: F401,F403
