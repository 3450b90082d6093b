"""CPU glue of the dense family: validated arguments -> convkit._cpu kernels."""
from __future__ import annotations
