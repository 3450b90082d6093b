// convkit/src/depthwise.hpp -- public C++ entry points of the direct depthwise convolution
// (groups == C_in, any channel multiplier C_out/C_in; see depthwise_impl.hpp).
//
// Same arguments and sizes struct as conv2d.hpp; each call runs the instruction-set variant
// that convkit::active_isa() (conv2d.hpp) selects.
#pragma once
#include "common.hpp"

namespace convkit {

template <class T> void depthwise_conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s);
template <class T> void depthwise_conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s);
template <class T> void depthwise_conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s);
// Both gradients in one pass (grad_out read once): grad_x (N, C, H, W), grad_w (C*M, 1, KH, KW).
template <class T>
void depthwise_conv2d_backward(T* grad_x, T* grad_w, const T* grad_out, const T* x, const T* w, const Conv2dSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (depthwise_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (depthwise_dispatch.cpp).
#define CONVKIT_DEPTHWISE_INSTANTIATE(T)                                                                     \
    template void depthwise_conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);         \
    template void depthwise_conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dSizes&);             \
    template void depthwise_conv2d_backward_weight<T>(T*, const T*, const T*, const Conv2dSizes&);           \
    template void depthwise_conv2d_backward<T>(T*, T*, const T*, const T*, const T*, const Conv2dSizes&);

}  // namespace convkit
