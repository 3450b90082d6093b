"""Reference implementations: batch norm, fold_batch_norm, group/layer/instance norm, local response norm."""
from __future__ import annotations

__all__ = []
