// convkit/src/conv2d.hpp -- public C++ entry points of the CPU convolution (see conv2d_impl.hpp).
//
// Each call picks the best instruction-set variant the running CPU supports
// (runtime dispatch; CONVKIT_ISA=generic|avx2|avx512 or set_isa() may lower it).
#pragma once
#include "common.hpp"

namespace convkit {

enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

Isa best_isa();                 // what this CPU (and OS) supports
Isa active_isa();               // what the kernels use now
void set_isa(Isa isa);          // clamped to best_isa()

template <class T> void conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s);
template <class T> void conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s);
template <class T> void conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s);
// Winograd F(2x2, 3x3) forward (winograd_impl.hpp): 3x3 kernels, stride 1, dilation 1 only.
template <class T> void conv2d_winograd_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s);

// The float and double instantiations of the functions above: once in each instruction-set
// variant (conv2d_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (conv2d_dispatch.cpp).
#define CONVKIT_CONV2D_INSTANTIATE(T)                                                                  \
    template void conv2d_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);             \
    template void conv2d_backward_data<T>(T*, const T*, const T*, const Conv2dSizes&);                 \
    template void conv2d_backward_weight<T>(T*, const T*, const T*, const Conv2dSizes&);               \
    template void conv2d_winograd_forward<T>(T*, const T*, const T*, const T*, const Conv2dSizes&);

}  // namespace convkit
