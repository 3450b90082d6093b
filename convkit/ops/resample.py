"""Public ops: max-unpooling and upsampling (nearest, bed of nails, bilinear)."""
from __future__ import annotations

__all__ = []
