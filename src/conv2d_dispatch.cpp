// convkit/src/conv2d_dispatch.cpp -- runtime choice of the conv2d instruction-set variant.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include "isa_dispatch.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                   \
    namespace ISA {                                                                            \
    template <class T> void conv2d_forward(T*, const T*, const T*, const T*, const Conv2dSizes&); \
    template <class T> void conv2d_backward_data(T*, const T*, const T*, const Conv2dSizes&);   \
    template <class T> void conv2d_backward_weight(T*, const T*, const T*, const Conv2dSizes&); \
    template <class T> void conv2d_winograd_forward(T*, const T*, const T*, const T*, const Conv2dSizes&); \
    }
CONVKIT_DECLARE_VARIANTS()

Isa best_isa() {
#ifdef CONVKIT_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        return Isa::avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
    return Isa::generic;
}

static Isa initial_isa() {   // CONVKIT_ISA in the environment may lower the choice
    Isa isa = best_isa();
    if (const char* env = std::getenv("CONVKIT_ISA")) {
        if (!std::strcmp(env, "generic")) isa = Isa::generic;
        else if (!std::strcmp(env, "avx2") && isa >= Isa::avx2) isa = Isa::avx2;
    }
    return isa;
}

static std::atomic<int> g_isa{static_cast<int>(initial_isa())};

Isa active_isa() { return static_cast<Isa>(g_isa.load(std::memory_order_relaxed)); }
void set_isa(Isa isa) { g_isa.store(static_cast<int>(isa < best_isa() ? isa : best_isa())); }


template <class T> void conv2d_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(conv2d_forward, out, x, w, bias, s)
}
template <class T> void conv2d_backward_data(T* grad_x, const T* grad_out, const T* w, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(conv2d_backward_data, grad_x, grad_out, w, s)
}
template <class T> void conv2d_backward_weight(T* grad_w, const T* grad_out, const T* x, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(conv2d_backward_weight, grad_w, grad_out, x, s)
}

template <class T> void conv2d_winograd_forward(T* out, const T* x, const T* w, const T* bias, const Conv2dSizes& s) {
    CONVKIT_DISPATCH(conv2d_winograd_forward, out, x, w, bias, s)
}

CONVKIT_CONV2D_INSTANTIATE(float)
CONVKIT_CONV2D_INSTANTIATE(double)

}  // namespace convkit
