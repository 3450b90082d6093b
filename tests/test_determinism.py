"""Determinism (issue 9): every op, forward and backward, is bit-identical run to run and for
1, 2 and 3 OpenMP threads, with every compiled instruction-set variant.

The calls are tests/op_calls.py's table at shapes past every kernel's threading threshold,
with conv batches of 1 and 4 so that both conv2d schedules (images over threads, or one
image's GEMM split over threads) run. Every kernel reduces in a fixed order that does not
depend on the thread count (docs/reliability.md); this file checks all of them in one place.

    python -m pytest -q tests/test_determinism.py
"""
import numpy as np
import pytest

import convkit
from convkit import _cpu
from op_calls import op_calls, public_names, same_bits

THREADS = (1, 2, 3)
_ORDER = ["generic", "avx2", "avx512"]
ISAS = _ORDER[:_ORDER.index(_cpu.best_isa()) + 1]


@pytest.fixture
def restore_settings():
    threads, isa = convkit.get_num_threads(), _cpu.get_isa()
    yield
    convkit.set_num_threads(threads)
    _cpu.set_isa(isa)


def test_the_table_covers_every_public_op():
    calls = op_calls(np.random.default_rng(0), large=True)
    assert public_names(calls) == set(convkit.functional.__all__)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_op_is_bit_identical_across_runs_and_thread_counts(restore_settings, isa, dtype):
    _cpu.set_isa(isa)
    calls = op_calls(np.random.default_rng(2024), dtype, large=True)
    convkit.set_num_threads(1)
    first = {label: call() for label, call in calls.items()}
    differ = []
    for threads in THREADS + (THREADS[-1],):   # 1 again (run to run), 2, 3 and 3 again
        convkit.set_num_threads(threads)
        differ += [f"{label} ({threads} threads)" for label, call in calls.items()
                   if not same_bits(call(), first[label])]
    assert not differ, "results not bit-identical to the first 1-thread run: " + ", ".join(differ)
