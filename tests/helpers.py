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


def hostile_layouts(a):
    """The same values of `a` in hostile memory layouts, by name (see LAYOUTS)."""
    strided = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    strided[..., ::2] = a
    ro = a.copy()
    ro.flags.writeable = False
    raw = np.zeros(a.size * a.itemsize + 1, np.uint8)      # misaligned by one byte
    mis = raw[1:].view(a.dtype).reshape(a.shape)
    mis[...] = a
    buf = np.zeros(a.size * a.itemsize + 128, np.uint8)    # one element past a 64-byte boundary: aligned
    start = (-buf.ctypes.data) % 64 + a.itemsize            # for the dtype, not for a SIMD register
    off = buf[start:start + a.size * a.itemsize].view(a.dtype).reshape(a.shape)
    off[...] = a
    return dict(c=a, fortran=np.asfortranarray(a), strided=strided[..., ::2], negative=np.flip(np.flip(a, -1).copy(), -1),
                transposed=np.swapaxes(np.swapaxes(a, 0, -1).copy(), 0, -1), readonly=ro, misaligned=mis,
                offset=off, bigendian=a.astype(a.dtype.newbyteorder(">")))


def check_finite_differences(loss, args, grads, rng, samples=12, eps=1e-6, tol=1e-6):
    """Central differences of the scalar loss(*args) at `samples` random entries of each
    argument against the analytic gradients `grads` (same order as args; float64)."""
    for idx, (arr, grad) in enumerate(zip(args, grads)):
        for flat in rng.choice(arr.size, size=min(arr.size, samples), replace=False):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[idx].flat[flat] += eps
            minus[idx].flat[flat] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert abs(numeric - grad.flat[flat]) <= tol * max(1.0, abs(numeric)), (idx, flat)


LAYOUTS = ["c", "fortran", "strided", "negative", "transposed", "readonly", "misaligned", "offset", "bigendian"]
