"""The CUDA emulator's own tests (tests/cuda_emulator/, docs/gpu-testing.md), on tiny kernels.

Runs wherever a C++ compiler is found, also on machines with a real GPU (the fake cupy is
then loaded under another name). Covers: grid-stride loops, __syncthreads block reductions,
shuffles, dynamic shared memory, the argument checks, out-of-bounds writes, divergent
barriers, launch limits, NaN-filled `empty`, and CuPy's refusal of implicit host conversion.
Run: python -m pytest tests/test_cuda_emulator.py
"""
import importlib.util
import os
import shutil
import sys

import numpy as np
import pytest

_EMULATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cuda_emulator")

if shutil.which(os.environ.get("CXX", "g++")) is None:
    pytest.skip("no C++ compiler for the CUDA emulator", allow_module_level=True)


def _fake_cupy():
    """The emulator's cupy: the one conftest imported, else loaded as `emulated_cupy`."""
    cp = sys.modules.get("cupy")
    if getattr(cp, "__emulated__", False):
        return cp
    spec = importlib.util.spec_from_file_location(
        "emulated_cupy", os.path.join(_EMULATOR, "cupy", "__init__.py"),
        submodule_search_locations=[os.path.join(_EMULATOR, "cupy")])
    module = importlib.util.module_from_spec(spec)
    sys.modules["emulated_cupy"] = module
    spec.loader.exec_module(module)
    return module


cp = _fake_cupy()
i64, i32 = np.int64, np.int32

SOURCE = r"""
typedef long long index_t;

// out[i] = a[i] + alpha * b[i], grid-stride
template <typename T>
__global__ void axpy(T* out, const T* a, const T* b, T alpha, index_t n) {
    for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (index_t)blockDim.x * gridDim.x)
        out[i] = a[i] + alpha * b[i];
}

// one block (2-D: 16 x THREADS/16) per row: out[row] = sum of x[row, :], shared-memory tree
template <typename T, int THREADS>
__global__ void row_sum_shared(T* out, const T* x, index_t cols) {
    __shared__ double partial[THREADS];
    const int t = threadIdx.y * blockDim.x + threadIdx.x;
    double s = 0;
    for (index_t j = t; j < cols; j += THREADS) s += x[blockIdx.x * cols + j];
    partial[t] = s;
    __syncthreads();
    for (int k = THREADS / 2; k > 0; k /= 2) {
        if (t < k) partial[t] += partial[t + k];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = (T)partial[0];
}

// same with warp shuffles, then one partial per warp in shared memory
template <typename T>
__global__ void row_sum_shuffle(T* out, const T* x, index_t cols) {
    __shared__ double warp_sums[32];
    double s = 0;
    for (index_t j = threadIdx.x; j < cols; j += blockDim.x) s += x[blockIdx.x * cols + j];
    for (int offset = 16; offset > 0; offset /= 2) s += __shfl_down_sync(0xffffffffu, s, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (unsigned w = 0; w < blockDim.x / 32; ++w) total += warp_sums[w];
        out[blockIdx.x] = (T)total;
    }
}

// every shuffle flavour: out[mode * n + t] for thread t of one block
__global__ void shuffles(int* out, int width) {
    const int t = threadIdx.x, n = blockDim.x;
    out[0 * n + t] = __shfl_down_sync(0xffffffffu, t, 3, width);
    out[1 * n + t] = __shfl_up_sync(0xffffffffu, t, 3, width);
    out[2 * n + t] = __shfl_xor_sync(0xffffffffu, t, 5, width);
    out[3 * n + t] = __shfl_sync(0xffffffffu, t, 7, width);
}

// reverse each block's chunk through dynamic shared memory
template <typename T>
__global__ void reverse_chunks(T* out, const T* x) {
    extern __shared__ unsigned char ck_dynamic_smem[];
    T* chunk = reinterpret_cast<T*>(ck_dynamic_smem);
    const index_t base = (index_t)blockIdx.x * blockDim.x;
    chunk[threadIdx.x] = x[base + threadIdx.x];
    __syncthreads();
    out[base + threadIdx.x] = chunk[blockDim.x - 1 - threadIdx.x];
}

// threads >= live exit early; the rest still meet at the barrier
__global__ void early_exit(float* out, int live) {
    __shared__ float v[64];
    if ((int)threadIdx.x >= live) return;
    v[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = v[live - 1 - threadIdx.x];
}

// bugs the emulator must catch
__global__ void write_past_end(float* out, index_t n) { out[n + threadIdx.x] = 1.0f; }
__global__ void write_before_start(double* out) { out[-1] = 1.0; }
__global__ void divergent(float* out) {
    if (threadIdx.x < 16) { __syncthreads(); } else { __syncthreads(); }
    out[threadIdx.x] = 0.0f;
}
__global__ void barrier_in_later_block(float* out) {
    if (blockIdx.x > 0) __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}
__global__ void smem_overflow(float* out) {
    extern __shared__ unsigned char ck_dynamic_smem[];
    float* s = reinterpret_cast<float*>(ck_dynamic_smem);
    s[threadIdx.x + 1] = 2.0f;
    out[threadIdx.x] = 0.0f;
}
__global__ void shuffle_after_exit(float* out) {
    if (threadIdx.x == 0) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// a race between blocks and threads: who writes last depends on the order
__global__ void last_writer(int* out) { out[0] = blockIdx.x * blockDim.x + threadIdx.x; }

extern "C" __global__ void fill_index(long long* out, long long n) {
    for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (index_t)blockDim.x * gridDim.x)
        out[i] = i;
}
"""
EXPRS = ["axpy<float>", "axpy<double>", "row_sum_shared<double, 128>", "row_sum_shared<float, 64>",
         "row_sum_shuffle<double>", "shuffles", "reverse_chunks<float>", "reverse_chunks<double>",
         "early_exit", "write_past_end", "write_before_start", "divergent", "barrier_in_later_block",
         "smem_overflow", "shuffle_after_exit", "last_writer"]


@pytest.fixture(scope="module")
def module():
    return cp.RawModule(code=SOURCE, options=("-std=c++17",), name_expressions=EXPRS)


@pytest.mark.parametrize("dtype,expr", [(np.float32, "axpy<float>"), (np.float64, "axpy<double>")])
def test_grid_stride_axpy(module, rng, dtype, expr):
    n = 10007
    a, b = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    out = cp.empty(n, dtype=dtype)
    module.get_function(expr)((7,), (128,), (out, cp.asarray(a), cp.asarray(b), dtype(0.5), i64(n)))
    np.testing.assert_array_equal(out.get(), a + dtype(0.5) * b)


@pytest.mark.parametrize("expr,block,dtype", [("row_sum_shared<double, 128>", (16, 8), np.float64),
                                              ("row_sum_shared<float, 64>", (16, 4), np.float32),
                                              ("row_sum_shuffle<double>", (96,), np.float64)])
def test_block_reductions(module, rng, expr, block, dtype):
    x = rng.standard_normal((5, 301)).astype(dtype)
    out = cp.empty(5, dtype=dtype)
    module.get_function(expr)((5,), block, (out, cp.asarray(x), i64(301)))
    np.testing.assert_allclose(out.get(), x.sum(axis=1, dtype=np.float64), rtol=1e-5)


@pytest.mark.parametrize("width", [32, 8])
def test_shuffle_lanes(module, width):
    n = 48                                        # a partial second warp
    out = cp.empty(4 * n, dtype=np.int32)
    module.get_function("shuffles")((1,), (n,), (out, i32(width)))
    t = np.arange(n)
    lane, warp = t % 32, t - t % 32
    seg = lane - lane % width
    down = np.where(lane + 3 < seg + width, t + 3, t)
    down = np.where(down < n, down, t)            # a lane with no thread keeps its own value
    up = np.where(lane - 3 >= seg, t - 3, t)
    xor = np.where((lane ^ 5) < seg + width, warp + (lane ^ 5), t)
    xor = np.where(xor < n, xor, t)
    idx = np.where(warp + seg + 7 % width < n, warp + seg + 7 % width, t)
    np.testing.assert_array_equal(out.get().reshape(4, n), [down, up, xor, idx])


@pytest.mark.parametrize("dtype,expr", [(np.float32, "reverse_chunks<float>"), (np.float64, "reverse_chunks<double>")])
def test_dynamic_shared_memory(module, dtype, expr):
    x = np.arange(3 * 64, dtype=dtype)
    out = cp.empty(x.size, dtype=dtype)
    module.get_function(expr)((3,), (64,), (out, cp.asarray(x)), shared_mem=64 * x.itemsize)
    np.testing.assert_array_equal(out.get(), x.reshape(3, 64)[:, ::-1].ravel())


def test_barrier_waits_only_for_live_threads(module):
    out = cp.zeros(64, dtype=np.float32)
    module.get_function("early_exit")((1,), (64,), (out, i32(40)))
    np.testing.assert_array_equal(out.get()[:40], np.arange(40)[::-1])


@pytest.mark.parametrize("order,expected", [(None, 3 * 32 - 1), ("reverse", 0)])
def test_reverse_order_exposes_races(module, monkeypatch, order, expected):
    if order:
        monkeypatch.setenv("CUDA_EMULATOR_ORDER", order)
    out = cp.zeros(1, dtype=np.int32)
    module.get_function("last_writer")((3,), (32,), (out,))
    assert int(out[0]) == expected


def test_forced_fibers_run_barriers_in_any_block(module, monkeypatch):
    monkeypatch.setenv("CUDA_EMULATOR_FIBERS", "1")
    out = cp.zeros(64, dtype=np.float32)
    module.get_function("barrier_in_later_block")((2,), (32,), (out,))
    assert (out.get() == 1).all()


def test_extern_c_kernel_without_name_expressions():
    m = cp.RawModule(code=SOURCE)
    out = cp.empty(1000, dtype=np.int64)
    m.get_function("fill_index")((2,), (64,), (out, i64(1000)))
    np.testing.assert_array_equal(out.get(), np.arange(1000))


@pytest.mark.parametrize("args,match", [
    (lambda o, a: (o, a, a, np.float64(1), i64(4)), r"axpy<float>: argument 3 is a float64 scalar but the parameter is float"),
    (lambda o, a: (o, a.astype(np.float64), a, np.float32(1), i64(4)), r"argument 1 is a float64 array but the parameter is float\*"),
    (lambda o, a: (o, a, a, np.float32(1), 4), r"argument 4 must be a NumPy scalar of type long long, got int 4"),
    (lambda o, a: (o, a, a, np.float32(1), i32(4)), r"argument 4 is a int32 scalar but the parameter is long long"),
    (lambda o, a: (o, a.get(), a, np.float32(1), i64(4)), r"argument 1 must be a cupy array for parameter type float\*, got numpy.ndarray"),
    (lambda o, a: (o, a, a, np.float32(1)), r"the kernel takes 5 arguments, got 4"),
    (lambda o, a: (o, a, a, a, i64(4)), r"argument 3 must be a NumPy scalar of type float"),
])
def test_argument_type_mismatch(module, args, match):
    out, a = cp.zeros(4, dtype=np.float32), cp.ones(4, dtype=np.float32)
    with pytest.raises(TypeError, match=match):
        module.get_function("axpy<float>")((1,), (4,), args(out, a))


def test_non_contiguous_array_argument(module):
    a = cp.ones((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="argument 1 is a non-C-contiguous array"):
        module.get_function("axpy<float>")((1,), (4,), (a, a.T, a, np.float32(1), i64(4)))


@pytest.mark.parametrize("expr,args,kw,match", [
    ("write_past_end", lambda: (cp.zeros(10, dtype=np.float32), i64(10)), {},
     r"write_past_end: wrote past the end of argument 0 \(byte 40 of its 40-byte allocation\)"),
    ("write_before_start", lambda: (cp.zeros(3, dtype=np.float64),), {},
     r"write_before_start: wrote before the start of argument 0"),
    ("smem_overflow", lambda: (cp.zeros(8, dtype=np.float32),), dict(shared_mem=32),
     r"wrote dynamic shared memory byte 32, past the launch's 32 bytes"),
    ("divergent", lambda: (cp.zeros(32, dtype=np.float32),), {},
     r"divergent __syncthreads in block \(0,0,0\): thread \(0,0,0\) waits at __syncthreads \(line \d+\), "
     r"thread \(16,0,0\) at __syncthreads \(line \d+\)"),
    ("barrier_in_later_block", lambda: (cp.zeros(64, dtype=np.float32),), {},
     r"block \(1,0,0\) thread \(0,0,0\) reached __syncthreads.*CUDA_EMULATOR_FIBERS=1"),
    ("shuffle_after_exit", lambda: (cp.zeros(32, dtype=np.float32),), {},
     r"shuffle \(line \d+\) in block \(0,0,0\) not executed by every thread"),
])
def test_bugs_are_caught(module, expr, args, kw, match):
    block = (32,) if expr != "smem_overflow" else (8,)
    with pytest.raises(cp.EmulatorError, match=match):
        module.get_function(expr)((2,) if expr == "barrier_in_later_block" else (1,), block, args(), **kw)


@pytest.mark.parametrize("grid,block,shared_mem,match", [
    ((1,), (1025,), 0, r"block \(1025,1,1\) exceeds 1024 threads"),
    ((1,), (32, 32, 2), 0, r"exceeds 1024 threads"),
    ((1, 65536), (32,), 0, r"grid \(1,65536,1\) exceeds"),
    ((0,), (32,), 0, r"has a zero dimension"),
    ((1,), (32,), 48 * 1024 + 1, r"49153 bytes of dynamic shared memory exceed 48 KiB"),
])
def test_launch_limits(module, grid, block, shared_mem, match):
    out = cp.zeros(4, dtype=np.float32)
    with pytest.raises(cp.EmulatorError, match="invalid launch: .*" + match):
        module.get_function("axpy<float>")(grid, block, (out, out, out, np.float32(1), i64(4)), shared_mem=shared_mem)


def test_compile_error_has_the_compiler_message():
    with pytest.raises(cp.CompileException, match=r"kernel.cu:2:.*undeclared_name"):
        cp.RawModule(code="__global__ void k(float* x) {\n  x[0] = undeclared_name;\n}\n",
                     name_expressions=["k"]).get_function("k")


def test_empty_is_poisoned():
    assert np.isnan(cp.empty((3, 5), dtype=np.float32).get()).all()
    assert np.isnan(cp.empty(4, dtype=np.float64, order="F").get()).all()
    assert (cp.empty(6, dtype=np.int64).get() == 0x5A5A5A5A5A5A5A5A).all()


def test_no_implicit_host_conversion():
    a = cp.arange(6, dtype=np.float32).reshape(2, 3)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Unsupported type"):
        cp.maximum(a, np.ones(3, np.float32))


def test_array_basics():
    host = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    a = cp.asarray(np.asfortranarray(host))
    assert a.flags.f_contiguous and not a.flags.c_contiguous          # layout kept, like CuPy
    c = cp.ascontiguousarray(a)
    assert c.flags.c_contiguous and cp.ascontiguousarray(c) is c
    v = c.reshape(-1)
    assert cp.may_share_memory(v, c) and v.data.ptr == c.data.ptr
    v[0] = 100.0
    assert float(c[0, 0, 0]) == 100.0
    np.testing.assert_array_equal((c * 2 + 1).get().ravel()[1:], (host * 2 + 1).ravel()[1:])
    assert float(c.sum()) == host.sum() + 100 and c.sum().shape == ()
    big_endian = cp.asarray(host.astype(">f4"))
    assert big_endian.dtype == np.float32 and big_endian.dtype.isnative
    np.testing.assert_array_equal(cp.asnumpy(big_endian), host)
    with cp.cuda.Device(0):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        end.record()
        end.synchronize()
        assert cp.cuda.get_elapsed_time(start, end) >= 0
    assert cp.cuda.runtime.getDeviceCount() == 1


def test_convkit_runtime_source_on_the_emulator(tmp_path, monkeypatch, rng):
    """convkit.gpu._runtime's Source/Launcher and the glue helpers, end to end (needs the
    emulator imported as `cupy`, i.e. no real GPU)."""
    if not getattr(sys.modules.get("cupy"), "__emulated__", False):
        pytest.skip("cupy is the real CuPy here")
    from convkit.gpu import _runtime, empty, flat, i64, scalar
    monkeypatch.setattr(_runtime, "KERNEL_DIR", str(tmp_path))
    shutil.copy(os.path.join(os.path.dirname(_runtime.__file__), "common.cuh"), tmp_path)
    (tmp_path / "toy.cu").write_text('#include "common.cuh"\n'
                                     "template <typename T>\n"
                                     "__global__ void scale(T* out, const T* x, T a, index_t n) {\n"
                                     "    CK_GRID_STRIDE_LOOP(i, n) out[i] = a * x[i];\n"
                                     "}\n")
    source = _runtime.Source("toy.cu", ["scale"])
    monkeypatch.setattr(_runtime, "SOURCES", [s for s in _runtime.SOURCES if s is not source])
    for dtype in (np.float32, np.float64):
        x = cp.asarray(rng.standard_normal((5, 7)).astype(dtype).T)     # not C-contiguous
        xf, out = flat(x), empty(x.size, x)
        source.kernel("scale", x.dtype)(_runtime.blocks_for(x.size, 32), 32, (out, xf, scalar(x, 3), i64(x.size)))
        np.testing.assert_array_equal(out.get(), 3 * x.get().ravel())
        with pytest.raises(TypeError, match=r"scale<\w+>: pass NumPy scalars .* not Python int 35"):
            source.kernel("scale", x.dtype)(1, 32, (out, xf, scalar(x, 3), 35))
