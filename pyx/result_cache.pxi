# pyx/result_cache.pxi -- large result arrays from src/result_cache.hpp (included by _cpu.pyx).
# A ResultBuffer owns one block and exposes it as a writable byte buffer; the NumPy array
# made from it (convkit/cpu/__init__.py::empty) keeps it alive and, when the array goes,
# __dealloc__ hands the block back to the cache.
from cpython.buffer cimport PyBUF_WRITABLE

cdef extern from "result_cache.hpp" namespace "convkit" nogil:
    cdef size_t kLargeResultBytes
    cdef struct ResultCacheInfo:
        size_t cached_bytes, cached_blocks, limit_bytes, hits, misses
    void* result_alloc(size_t nbytes)
    void result_free(void* p, size_t nbytes)
    ResultCacheInfo _k_result_cache_info "convkit::result_cache_info"()
    void _k_set_result_cache_limit "convkit::set_result_cache_limit"(size_t nbytes)

LARGE_RESULT_BYTES = kLargeResultBytes


cdef class ResultBuffer:
    """`nbytes` uninitialised bytes, 2 MiB aligned, from the result cache."""
    cdef void* data
    cdef Py_ssize_t nbytes
    cdef Py_ssize_t shape[1]

    def __cinit__(self, Py_ssize_t nbytes):
        if nbytes < 0:
            raise ValueError(f"ResultBuffer: nbytes must be >= 0, got {nbytes}")
        self.data = result_alloc(<size_t>nbytes)
        if self.data == NULL:
            raise MemoryError(f"ResultBuffer: cannot allocate {nbytes} bytes")
        self.nbytes = nbytes
        self.shape[0] = nbytes

    def __dealloc__(self):
        result_free(self.data, <size_t>self.nbytes)

    def __getbuffer__(self, Py_buffer* view, int flags):
        view.buf = self.data
        view.obj = self
        view.len = self.nbytes
        view.readonly = 0
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = self.shape
        view.strides = &view.itemsize
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer* view):
        pass


def result_cache_info():
    """The result cache now: cached bytes and blocks, its limit, hits and misses so far."""
    cdef ResultCacheInfo i = _k_result_cache_info()
    return {"cached_bytes": i.cached_bytes, "cached_blocks": i.cached_blocks,
            "limit_bytes": i.limit_bytes, "hits": i.hits, "misses": i.misses}


def set_result_cache_limit(size_t nbytes):
    _k_set_result_cache_limit(nbytes)
