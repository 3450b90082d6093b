"""Test helpers shared by the test modules (tests/ is on sys.path via pyproject's pytest config)."""
import numpy as np

TOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4}


def assert_close(actual, expected, dtype=None, rtol=None):
    """Scale-aware comparison: max |a - e| <= rtol * max(1, max |e|)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"shape {actual.shape} != {expected.shape}"
    if rtol is None:
        rtol = TOL[np.dtype(dtype)] if dtype is not None else 1e-10
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= rtol * scale, f"max abs error {err:.3g} > {rtol:.1g} * scale {scale:.3g}"
