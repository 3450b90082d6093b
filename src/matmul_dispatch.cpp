// convkit/src/matmul_dispatch.cpp -- runtime choice of the matmul instruction-set variant
// (the one conv2d uses: active_isa() of conv2d.hpp).
#include "conv2d.hpp"
#include "matmul.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                   \
    namespace ISA {                                                                            \
    template <class T> void matmul(T*, const T*, const T*, const T*, const MatmulSizes&);     \
    template <class T> void column_sums(T*, const T*, const MatmulSizes&);                    \
    }
CONVKIT_DECLARE(generic)
#ifdef CONVKIT_X86_DISPATCH
CONVKIT_DECLARE(avx2)
CONVKIT_DECLARE(avx512)
#endif

#ifdef CONVKIT_X86_DISPATCH
#define CONVKIT_DISPATCH(FN, ...)                                          \
    switch (active_isa()) {                                                \
        case Isa::avx512: return avx512::FN<T>(__VA_ARGS__);               \
        case Isa::avx2: return avx2::FN<T>(__VA_ARGS__);                   \
        default: return generic::FN<T>(__VA_ARGS__);                       \
    }
#else
#define CONVKIT_DISPATCH(FN, ...) return generic::FN<T>(__VA_ARGS__);
#endif

template <class T> void matmul(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s) {
    CONVKIT_DISPATCH(matmul, c, a, b, bias, s)
}
template <class T> void column_sums(T* sums, const T* g, const MatmulSizes& s) {
    CONVKIT_DISPATCH(column_sums, sums, g, s)
}

template void matmul<float>(float*, const float*, const float*, const float*, const MatmulSizes&);
template void matmul<double>(double*, const double*, const double*, const double*, const MatmulSizes&);
template void column_sums<float>(float*, const float*, const MatmulSizes&);
template void column_sums<double>(double*, const double*, const MatmulSizes&);

}  // namespace convkit
