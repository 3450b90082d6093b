"""CPU glue of the transpose family: validated arguments -> convkit._cpu kernels."""
from __future__ import annotations
