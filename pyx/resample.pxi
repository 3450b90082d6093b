# pyx/resample.pxi -- bindings of src/resample.hpp: max-unpooling and upsampling (nearest,
# bed of nails, bilinear); included by _cpu.pyx. `sizes` is (planes, H, W, OH, OW).

cdef extern from "resample.hpp" namespace "convkit" nogil:
    cdef struct ResampleSizes:
        int64_t planes, h, w, oh, ow
    bint c_indices_in_range "convkit::indices_in_range"(const int64_t* indices, int64_t count,
                                                        int64_t limit) except +
    bint c_max_unpool2d_forward "convkit::max_unpool2d_forward"[T](
        T* out, const T* x, const int64_t* indices, const ResampleSizes& s) except +
    bint c_max_unpool2d_backward "convkit::max_unpool2d_backward"[T](
        T* grad_x, const T* grad_out, const int64_t* indices, const ResampleSizes& s) except +
    void c_upsample_nearest2d_forward "convkit::upsample_nearest2d_forward"[T](
        T* out, const T* x, const int64_t* src_h, const int64_t* src_w, const ResampleSizes& s) except +
    void c_upsample_nearest2d_backward "convkit::upsample_nearest2d_backward"[T](
        T* grad_x, const T* grad_out, const int64_t* first_h, const int64_t* first_w,
        const ResampleSizes& s) except +
    void c_upsample_bed_of_nails2d_forward "convkit::upsample_bed_of_nails2d_forward"[T](
        T* out, const T* x, const ResampleSizes& s) except +
    void c_upsample_bed_of_nails2d_backward "convkit::upsample_bed_of_nails2d_backward"[T](
        T* grad_x, const T* grad_out, const ResampleSizes& s) except +
    void c_upsample_bilinear2d_forward "convkit::upsample_bilinear2d_forward"[T](
        T* out, const T* x, const int64_t* taps_h, const T* weights_h, const int64_t* taps_w,
        const T* weights_w, const ResampleSizes& s) except +
    void c_upsample_bilinear2d_backward "convkit::upsample_bilinear2d_backward"[T](
        T* grad_x, const T* grad_out, const int64_t* taps_h, const T* weights_h, const int64_t* taps_w,
        const T* weights_w, const ResampleSizes& s) except +


cdef ResampleSizes _resample_sizes(tuple g):
    cdef ResampleSizes s
    s.planes, s.h, s.w, s.oh, s.ow = g
    return s


def indices_in_range(const int64_t[::1] indices, int64_t limit):
    """Whether every entry of a non-empty int64 array lies in [0, limit) (one parallel pass)."""
    cdef bint ok
    with nogil:
        ok = c_indices_in_range(&indices[0], indices.shape[0], limit)
    return ok


def max_unpool2d_forward(floating[::1] out, const floating[::1] x, const int64_t[::1] indices,
                         tuple sizes):
    """False when an index was out of range (out is then incomplete)."""
    cdef ResampleSizes s = _resample_sizes(sizes)
    cdef bint ok
    with nogil:
        ok = c_max_unpool2d_forward(&out[0], &x[0], &indices[0], s)
    return ok


def max_unpool2d_backward(floating[::1] grad_x, const floating[::1] grad_out,
                          const int64_t[::1] indices, tuple sizes):
    """False when an index was out of range (grad_x is then incomplete)."""
    cdef ResampleSizes s = _resample_sizes(sizes)
    cdef bint ok
    with nogil:
        ok = c_max_unpool2d_backward(&grad_x[0], &grad_out[0], &indices[0], s)
    return ok


def upsample_nearest2d_forward(floating[::1] out, const floating[::1] x, const int64_t[::1] src_h,
                               const int64_t[::1] src_w, tuple sizes):
    cdef ResampleSizes s = _resample_sizes(sizes)
    with nogil:
        c_upsample_nearest2d_forward(&out[0], &x[0], &src_h[0], &src_w[0], s)


def upsample_nearest2d_backward(floating[::1] grad_x, const floating[::1] grad_out,
                                const int64_t[::1] first_h, const int64_t[::1] first_w, tuple sizes):
    cdef ResampleSizes s = _resample_sizes(sizes)
    with nogil:
        c_upsample_nearest2d_backward(&grad_x[0], &grad_out[0], &first_h[0], &first_w[0], s)


def upsample_bed_of_nails2d_forward(floating[::1] out, const floating[::1] x, tuple sizes):
    cdef ResampleSizes s = _resample_sizes(sizes)
    with nogil:
        c_upsample_bed_of_nails2d_forward(&out[0], &x[0], s)


def upsample_bed_of_nails2d_backward(floating[::1] grad_x, const floating[::1] grad_out, tuple sizes):
    cdef ResampleSizes s = _resample_sizes(sizes)
    with nogil:
        c_upsample_bed_of_nails2d_backward(&grad_x[0], &grad_out[0], s)


def upsample_bilinear2d_forward(floating[::1] out, const floating[::1] x, const int64_t[::1] taps_h,
                                const floating[::1] weights_h, const int64_t[::1] taps_w,
                                const floating[::1] weights_w, tuple sizes):
    cdef ResampleSizes s = _resample_sizes(sizes)
    with nogil:
        c_upsample_bilinear2d_forward(&out[0], &x[0], &taps_h[0], &weights_h[0], &taps_w[0],
                                      &weights_w[0], s)


def upsample_bilinear2d_backward(floating[::1] grad_x, const floating[::1] grad_out,
                                 const int64_t[::1] taps_h, const floating[::1] weights_h,
                                 const int64_t[::1] taps_w, const floating[::1] weights_w, tuple sizes):
    cdef ResampleSizes s = _resample_sizes(sizes)
    with nogil:
        c_upsample_bilinear2d_backward(&grad_x[0], &grad_out[0], &taps_h[0], &weights_h[0],
                                       &taps_w[0], &weights_w[0], s)
