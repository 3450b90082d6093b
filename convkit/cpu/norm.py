"""CPU glue of the norm family: validated arguments -> convkit._cpu kernels."""
from __future__ import annotations
