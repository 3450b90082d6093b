// convkit/src/resample_dispatch.cpp -- runtime choice of the bilinear upsampling
// instruction-set variant (the one conv2d uses: active_isa() of conv2d.hpp).
#include "isa_dispatch.hpp"
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
CONVKIT_DECLARE_VARIANTS()

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

CONVKIT_BILINEAR_INSTANTIATE(float)
CONVKIT_BILINEAR_INSTANTIATE(double)

}  // namespace convkit
