"""CPU glue of the resample family: validated arguments -> convkit._cpu kernels."""
from __future__ import annotations
