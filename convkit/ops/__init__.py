"""Public ops, one module per family; re-exported by convkit.functional."""
