"""Reference implementations: max/avg pooling 1-D/2-D, adaptive pooling, global pooling."""
from __future__ import annotations

__all__ = []
