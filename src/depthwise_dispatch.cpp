// convkit/src/depthwise_dispatch.cpp -- runtime choice of the depthwise instruction-set variant
// (the same choice as conv2d's: convkit::active_isa() in conv2d_dispatch.cpp).
#include "isa_dispatch.hpp"
#include "depthwise.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                                  \
    namespace ISA {                                                                                           \
    template <class T> void depthwise_conv2d_forward(T*, const T*, const T*, const T*, const Conv2dSizes&); \
    template <class T> void depthwise_conv2d_backward_data(T*, const T*, const T*, const Conv2dSizes&);     \
    template <class T> void depthwise_conv2d_backward_weight(T*, const T*, const T*, const Conv2dSizes&);   \
    template <class T>                                                                                        \
    void depthwise_conv2d_backward(T*, T*, const T*, const T*, const T*, const Conv2dSizes&);                 \
    }
CONVKIT_DECLARE_VARIANTS()


template <class T>
void depthwise_conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(depthwise_conv2d_forward, out, x, w, bias, s)
}
template <class T>
void depthwise_conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(depthwise_conv2d_backward_data, grad_x, grad_out, w, s)
}
template <class T>
void depthwise_conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(depthwise_conv2d_backward_weight, grad_w, grad_out, x, s)
}
template <class T>
void depthwise_conv2d_backward(T* grad_x, T* grad_w, const T* grad_out, const T* x, const T* w, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(depthwise_conv2d_backward, grad_x, grad_w, grad_out, x, w, s)
}

CONVKIT_DEPTHWISE_INSTANTIATE(float)
CONVKIT_DEPTHWISE_INSTANTIATE(double)

}  // namespace convkit
