// convkit/src/norm_avx2.cpp -- the norm kernels (batch, group/layer/instance, local response)
// compiled for the avx2 instruction set (compiler flags in CMakeLists.txt);
// norm_dispatch.cpp chooses among the variants at run time.
#define CONVKIT_ISA avx2
#include "batch_norm_impl.hpp"
#include "group_norm_impl.hpp"
#include "lrn_impl.hpp"

namespace convkit {
namespace avx2 {
#define CONVKIT_INSTANTIATE(T)                                                                            \
    template void batch_norm_forward_train<T>(T*, T*, T*, const T*, const T*, const T*, const BatchNormSizes&); \
    template void batch_norm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*,              \
                                             const BatchNormSizes&);                                         \
    template void batch_norm_backward_train<T>(T*, T*, T*, const T*, const T*, const T*, const BatchNormSizes&); \
    template void batch_norm_backward_eval<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                              const BatchNormSizes&);                                        \
    template void group_norm_forward<T>(T*, double*, double*, const T*, const T*, const T*, const GroupNormSizes&); \
    template void group_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const GroupNormSizes&);     \
    template void local_response_norm_forward<T>(T*, const T*, const LrnSizes&);                             \
    template void local_response_norm_backward<T>(T*, const T*, const T*, const LrnSizes&);
CONVKIT_INSTANTIATE(float)
CONVKIT_INSTANTIATE(double)
}  // namespace avx2
}  // namespace convkit
