// convkit/src/matmul_dispatch.cpp -- runtime choice of the matmul instruction-set variant
// (the one conv2d uses: active_isa() of conv2d.hpp).
#include "isa_dispatch.hpp"
#include "matmul.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                   \
    namespace ISA {                                                                            \
    template <class T> void matmul(T*, const T*, const T*, const T*, const MatmulSizes&);     \
    template <class T> void column_sums(T*, const T*, const MatmulSizes&);                    \
    }
CONVKIT_DECLARE_VARIANTS()


template <class T> void matmul(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s) {
    CONVKIT_DISPATCH(matmul, c, a, b, bias, s)
}
template <class T> void column_sums(T* sums, const T* g, const MatmulSizes& s) {
    CONVKIT_DISPATCH(column_sums, sums, g, s)
}

CONVKIT_MATMUL_INSTANTIATE(float)
CONVKIT_MATMUL_INSTANTIATE(double)

}  // namespace convkit
