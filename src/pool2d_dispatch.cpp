// convkit/src/pool2d_dispatch.cpp -- runtime choice of the windowed-pooling instruction-set variant
// (the same active_isa() setting as conv2d; see conv2d_dispatch.cpp).
#include "isa_dispatch.hpp"
#include "pool2d.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                          \
    namespace ISA {                                                                                   \
    template <class T> void max_pool2d_forward(T*, index_t*, const T*, const Pool2dSizes&);          \
    template <class T> void avg_pool2d_forward(T*, const T*, const Pool2dSizes&);                    \
    template <class T> void avg_pool2d_backward(T*, const T*, const Pool2dSizes&);                   \
    }
CONVKIT_DECLARE_VARIANTS()

template <class T> void max_pool2d_forward(T* out, index_t* indices, const T* x, const Pool2dSizes& s) {
#ifdef CONVKIT_X86_DISPATCH
    // With indices, output rows of at most half a 512-bit vector leave most lanes of the
    // winner-tracking kernel idle (its 256-bit variant: 1.7x faster); planes in registers
    // (pool2d_short_rows.hpp) run faster with 512 bits.
    if (indices && active_isa() == Isa::avx512 && s.ow <= index_t(32 / sizeof(T)) &&
        !max_pool2d_short_rows_apply(s, 64 / sizeof(T), true))
        return avx2::max_pool2d_forward<T>(out, indices, x, s);
#endif
    CONVKIT_DISPATCH(max_pool2d_forward, out, indices, x, s)
}
template <class T> void avg_pool2d_forward(T* out, const T* x, const Pool2dSizes& s) {
    CONVKIT_DISPATCH(avg_pool2d_forward, out, x, s)
}
template <class T> void avg_pool2d_backward(T* grad_x, const T* grad_out, const Pool2dSizes& s) {
    CONVKIT_DISPATCH(avg_pool2d_backward, grad_x, grad_out, s)
}

CONVKIT_POOL2D_INSTANTIATE(float)
CONVKIT_POOL2D_INSTANTIATE(double)

}  // namespace convkit
