// convkit/src/norm.hpp -- the normalisation family's entry points, dispatched together by
// norm_dispatch.cpp over the variants of norm_isa.cpp: batch_norm.hpp, group_norm.hpp, lrn.hpp.
#pragma once
#include "batch_norm.hpp"
#include "group_norm.hpp"
#include "lrn.hpp"

// The float and double instantiations of all of them (norm_isa.cpp, norm_dispatch.cpp).
#define CONVKIT_NORM_INSTANTIATE()                                                                  \
    CONVKIT_BATCH_NORM_INSTANTIATE(float)                                                          \
    CONVKIT_BATCH_NORM_INSTANTIATE(double)                                                         \
    CONVKIT_GROUP_NORM_INSTANTIATE(float)                                                          \
    CONVKIT_GROUP_NORM_INSTANTIATE(double)                                                         \
    CONVKIT_LRN_INSTANTIATE(float)                                                                 \
    CONVKIT_LRN_INSTANTIATE(double)
