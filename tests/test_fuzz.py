"""Fuzz every op family with random, often hostile, arguments (issue 9).

Each example picks one op of a family, draws a valid call (small shapes; N, C and other
sizes may be 0) and then, more often than not, replaces one or two arguments by hostile
values (tests/fuzz_calls.py): 0, negative and huge numbers, floats where ints go, bools,
strings, None, numpy scalars, lists, wrong ndim, empty and wrong-dtype arrays, misfit out=.
The call must then
  * raise exactly TypeError or ValueError, with a message naming the function, and leave
    every array argument unchanged (no half-updated running statistics either); or
  * return what PyTorch returns for the same arguments (tests/fuzz_oracles.py:
    torch.nn.functional and autograd, a few lines of torch where torch has no function),
    modifying nothing but out= and the running statistics it documents.
When only one side accepts a call (or the results differ), the reason must be one of the
documented differences, docs/errors.md "Differences from PyTorch" (KNOWN_DIFFERENCES by id).
"Huge" values only go where they shrink the output (kernels, strides, dilations), so a huge
kernel is an output-size error or a tiny output, never a huge allocation. Without torch
only the error rules are checked. The counts per outcome print with -s.

    python -m pytest -q -s tests/test_fuzz.py     (~35 s; 2,000 calls per family)
"""
import collections
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import convkit as ck
import fuzz_calls as calls
import fuzz_oracles as oracles

EXAMPLES = 2000
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _torch():
    try:
        import torch
        return torch
    except ImportError:  # the oracle is optional: without torch only the error rules are checked
        return None


# --------------------------------------------------------------------------- outcome of one call

def _arrays(args):
    return {k: v for k, v in args.items() if isinstance(v, np.ndarray)}


def _snapshot(args):
    return {k: (v.tobytes(), v.shape, v.dtype) for k, v in _arrays(args).items()}


def _run_convkit(op, args):
    """(result, None) or (None, exception); checks the exception's type and message."""
    fn = getattr(ck, op)
    try:
        return oracles.convkit_result(op, fn, args), None
    except (TypeError, ValueError) as exc:
        assert type(exc) in (TypeError, ValueError), f"{op}: {type(exc).__name__}: {exc}"
        assert str(exc).startswith(f"{fn.__name__}:"), f"{op}: message does not name the function: {exc}"
        return None, exc


def _run_oracle(torch, op, args):
    """PyTorch's result for the same arguments, or None when torch rejects them."""
    try:
        return oracles.oracle_result(torch, op, args)
    except Exception:  # any torch failure means "torch rejects this call"
        return None


def _close(actual, expected, dtype):
    """Same shapes and NaN positions; values within the SPEC's tolerance per dtype."""
    actual, expected = list(actual), list(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        if a is None or e is None:
            assert a is None and e is None
            continue
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
        if e.dtype.kind in "iub":
            assert np.array_equal(a, e)
            continue
        assert a.dtype.newbyteorder("=") == e.dtype, f"dtype {a.dtype} != {e.dtype}"   # views keep x's byte order
        a, e = a.astype(np.float64), e.astype(np.float64)
        assert np.array_equal(np.isnan(a), np.isnan(e)), "NaN positions differ"
        finite = ~np.isnan(e)
        rtol = 1e-4 if dtype == np.float32 else 1e-9
        scale = max(1.0, float(np.abs(e[finite & np.isfinite(e)]).max(initial=0.0)))
        with np.errstate(invalid="ignore"):   # inf - inf: equal infinities count as equal below
            err = np.where(a[finite] == e[finite], 0.0, np.abs(a[finite] - e[finite]))
        assert float(err.max(initial=0.0)) <= rtol * scale, f"max error {err.max():.3g} (scale {scale:.3g})"


def check_call(torch, call):
    """Run one call on convkit (and torch); assert the rules; return a label for the tally."""
    op, args = call
    oracle = None if torch is None else _run_oracle(torch, op, args)
    before = _snapshot(args)
    result, exc = _run_convkit(op, args)
    mutable = oracles.UPDATED_IN_PLACE.get(op, ()) + ("out",) if exc is None else ()
    out = args.get("out")
    for name, (data, shape, dtype) in before.items():
        in_place = isinstance(out, np.ndarray) and np.may_share_memory(out, args[name])  # out=x, accepted by dense ops
        if name not in mutable and not (exc is None and in_place):
            a = args[name]
            assert (a.tobytes(), a.shape, a.dtype) == (data, shape, dtype), f"{op} modified {name}"
    if torch is None:
        return "checked without torch"
    if exc is not None and oracle is None:
        return "both raise"
    if exc is None and oracle is not None:
        try:
            _close(result, oracle, oracles.result_dtype(args))
            return "same result as torch"
        except AssertionError as mismatch:
            side, why = "different result", mismatch
    else:
        side, why = ("convkit raises", exc) if exc is not None else ("torch raises", "")
    known = oracles.known_difference(op, args, side, str(why))
    assert known is not None, f"unexplained difference ({side}) for {op}{oracles.describe(args)}: {why}"
    return f"{side}: {known}"


# --------------------------------------------------------------------------- one test per family

@pytest.fixture
def one_thread():
    """Tiny calls on one thread (convkit and torch): on a busy 2-core machine a team of 2
    threads costs ~50 ms a call."""
    torch, before = _torch(), ck.get_num_threads()
    torch_before = torch.get_num_threads() if torch else None
    ck.set_num_threads(1)
    if torch:
        torch.set_num_threads(1)
    yield
    ck.set_num_threads(before)
    if torch:
        torch.set_num_threads(torch_before)


@pytest.mark.filterwarnings("ignore")   # torch's and numpy's warnings about the hostile arguments
@pytest.mark.parametrize("family", sorted(calls.STRATEGIES))
def test_fuzz_family(family, one_thread):
    torch = _torch()
    tally = collections.Counter()

    @FUZZ
    @given(calls.STRATEGIES[family]())
    def run(call):
        tally[check_call(torch, call)] += 1

    run()
    print(f"\nfuzz {family}: {sum(tally.values())} calls, {dict(tally)}")
    assert sum(tally.values()) >= EXAMPLES


def test_known_differences_are_documented():
    """Every KNOWN_DIFFERENCES id has an entry in docs/errors.md's "Differences from PyTorch"."""
    doc = open(os.path.join(os.path.dirname(__file__), os.pardir, "docs", "errors.md")).read()
    section = doc.split("## Differences from PyTorch", 1)[1]
    documented = {line.split("`")[1] for line in section.splitlines() if line.startswith("- `D-")}
    assert set(oracles.KNOWN_DIFFERENCES) <= documented
