// convkit/src/isa_dispatch.hpp -- the macros of the *_dispatch.cpp files, which call the
// instruction-set variant of a kernel that active_isa() (conv2d.hpp) names. Each file defines
// CONVKIT_DECLARE(ISA) (its kernels' declarations in namespace ISA), then writes
//   CONVKIT_DECLARE_VARIANTS()            the declarations, once per compiled variant
//   CONVKIT_DISPATCH(fn, args...)         in the body of template <class T> fn: runs ISA::fn<T>
// (the variants are the *_isa.cpp files, compiled once per instruction set by CMakeLists.txt).
// The float / double instantiations are listed once per family, in its public header
// (CONVKIT_<FAMILY>_INSTANTIATE(T)), and expanded both in the variants and in the dispatcher.
#pragma once
#include "conv2d.hpp"

#ifdef CONVKIT_X86_DISPATCH
#define CONVKIT_DECLARE_VARIANTS() CONVKIT_DECLARE(generic) CONVKIT_DECLARE(avx2) CONVKIT_DECLARE(avx512)
#define CONVKIT_DISPATCH(FN, ...)                                          \
    switch (active_isa()) {                                                \
        case Isa::avx512: return avx512::FN<T>(__VA_ARGS__);               \
        case Isa::avx2: return avx2::FN<T>(__VA_ARGS__);                   \
        default: return generic::FN<T>(__VA_ARGS__);                       \
    }
#else
#define CONVKIT_DECLARE_VARIANTS() CONVKIT_DECLARE(generic)
#define CONVKIT_DISPATCH(FN, ...) return generic::FN<T>(__VA_ARGS__);
#endif
