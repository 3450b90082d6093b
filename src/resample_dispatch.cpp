// convkit/src/resample_dispatch.cpp -- runtime choice of the bilinear upsampling
// instruction-set variant (the one conv2d uses: active_isa() of conv2d.hpp).
#include "conv2d.hpp"
#include "resample.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                          \
    namespace ISA {                                                                                   \
    template <class T>                                                                                \
    void upsample_bilinear2d_forward(T*, const T*, const index_t*, const T*, const index_t*, const T*, \
                                     const ResampleSizes&);                                          \
    template <class T>                                                                                \
    void upsample_bilinear2d_backward(T*, const T*, const index_t*, const T*, const index_t*, const T*, \
                                      const ResampleSizes&);                                         \
    }
CONVKIT_DECLARE(generic)
#ifdef CONVKIT_X86_DISPATCH
CONVKIT_DECLARE(avx2)
CONVKIT_DECLARE(avx512)
#define CONVKIT_DISPATCH(FN, ...)                                          \
    switch (active_isa()) {                                                \
        case Isa::avx512: return avx512::FN<T>(__VA_ARGS__);               \
        case Isa::avx2: return avx2::FN<T>(__VA_ARGS__);                   \
        default: return generic::FN<T>(__VA_ARGS__);                       \
    }
#else
#define CONVKIT_DISPATCH(FN, ...) return generic::FN<T>(__VA_ARGS__);
#endif

template <class T>
void upsample_bilinear2d_forward(T* out, const T* x, const index_t* taps_h, const T* weights_h,
                                 const index_t* taps_w, const T* weights_w, const ResampleSizes& s) {
    CONVKIT_DISPATCH(upsample_bilinear2d_forward, out, x, taps_h, weights_h, taps_w, weights_w, s)
}
template <class T>
void upsample_bilinear2d_backward(T* grad_x, const T* grad_out, const index_t* taps_h, const T* weights_h,
                                  const index_t* taps_w, const T* weights_w, const ResampleSizes& s) {
    CONVKIT_DISPATCH(upsample_bilinear2d_backward, grad_x, grad_out, taps_h, weights_h, taps_w, weights_w, s)
}

#define CONVKIT_INSTANTIATE(T)                                                                      \
    template void upsample_bilinear2d_forward<T>(T*, const T*, const index_t*, const T*,           \
                                                 const index_t*, const T*, const ResampleSizes&);  \
    template void upsample_bilinear2d_backward<T>(T*, const T*, const index_t*, const T*,          \
                                                  const index_t*, const T*, const ResampleSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)

}  // namespace convkit
