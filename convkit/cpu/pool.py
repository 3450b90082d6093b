"""CPU glue of the pool family: validated arguments -> convkit._cpu kernels."""
from __future__ import annotations
