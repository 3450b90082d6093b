"""Public ops: transposed convolution (conv_transpose1d/2d) and depthwise convolution."""
from __future__ import annotations

__all__ = []
