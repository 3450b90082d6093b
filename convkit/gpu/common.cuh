// Shared by every convkit CUDA source (inlined by convkit/gpu/_runtime.py; NVRTC has no
// standard headers, so nothing here includes one).
#pragma once

typedef long long index_t;   // every index is 64-bit: tensors over 2**31 elements must not wrap

// for (index_t i : grid-stride range [0, n)) -- each thread handles i, i + stride, ...
#define CK_GRID_STRIDE_LOOP(i, n)                                                   \
    for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < (index_t)(n); \
         i += (index_t)blockDim.x * gridDim.x)
