// convkit/src/pool2d_avg.hpp -- avg_pool2d forward when the windows tile the input: a square
// K x K kernel with stride K (K = 2, 3, 4), no padding, every window inside the input (so
// ceil_mode adds no partial window). Compiled once per instruction set (included by
// pool2d_impl.hpp, whose avg_pool2d_forward tries this first).
//
// Each output row reads K input rows straight from x, no copies: per output, the K*K taps
// are added in row-major window order, in T, starting from 0, then divided by KH*KW (or the
// divisor override) -- the same operations in the same order as the general separable kernel
// (pool2d_rows.hpp) and PyTorch's, so the results agree bit for bit. With K a compile-time
// constant the taps are stride-K loads, which the compiler vectorises over the outputs
// (de-interleaving shuffles).
//
// Writes: out is fully OVERWRITTEN. Determinism: every output is computed by one thread in a
// fixed order.
#pragma once
#include "pool2d.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {
namespace CONVKIT_ISA {

// Divides by a power of two as a multiply by its inverse (exact: the same correctly rounded
// quotient), else divides.
template <index_t K, bool kPow2, class T>
void avg_pool2d_tiles(T* out, const T* x, index_t divisor, const Pool2dSizes& s) {
    // x (planes, H, W) -> out (planes, OH, OW); output row oh reads input rows oh*K .. oh*K + K - 1
    const T div = T(divisor), inv = T(1) / div;
#pragma omp parallel for num_threads(num_threads()) schedule(static)
    for (index_t plane = 0; plane < s.planes; ++plane)
        for (index_t oh = 0; oh < s.oh; ++oh) {
            const T* __restrict xr = x + (plane * s.h + oh * K) * s.w;
            T* __restrict y = out + (plane * s.oh + oh) * s.ow;
            for (index_t j = 0; j < s.ow; ++j) {
                T acc = T(0);
                for (index_t kh = 0; kh < K; ++kh)
                    for (index_t kw = 0; kw < K; ++kw) acc += xr[kh * s.w + j * K + kw];
                y[j] = kPow2 ? acc * inv : acc / div;
            }
        }
}

template <index_t K, class T>
void avg_pool2d_tiles(T* out, const T* x, const Pool2dSizes& s) {
    const index_t divisor = s.divisor_override ? s.divisor_override : K * K;
    if ((divisor & (divisor - 1)) == 0) avg_pool2d_tiles<K, true>(out, x, divisor, s);
    else avg_pool2d_tiles<K, false>(out, x, divisor, s);
}

// out = avg_pool2d(x) through avg_pool2d_tiles when the call is one of the tiling cases; false
// (nothing written) otherwise.
template <class T>
bool avg_pool2d_tiled(T* out, const T* x, const Pool2dSizes& s) {
    const index_t k = s.kh;
    if (s.kw != k || s.stride_h != k || s.stride_w != k || s.pad_h || s.pad_w || s.oh * k > s.h || s.ow * k > s.w)
        return false;
    switch (k) {
        case 2: return avg_pool2d_tiles<2>(out, x, s), true;
        case 3: return avg_pool2d_tiles<3>(out, x, s), true;
        case 4: return avg_pool2d_tiles<4>(out, x, s), true;
        default: return false;
    }
}

}  // namespace CONVKIT_ISA
}  // namespace convkit
