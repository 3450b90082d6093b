// convkit/src/channel_sums.cpp -- see channel_sums.hpp.
//
// Memory-bound: each channel's N planes are read once, in order, on 16-byte vectors of the
// baseline instruction set (enough to saturate memory on two threads). float values are
// summed in float lanes over runs of at most 8 values per lane (two accumulators, for two
// chains of adds in flight), each run then added into double lanes; the lanes are summed in
// a fixed order at the end. So a sum carries about the rounding of a pairwise float sum,
// whatever N*P. Planes of fewer than 16 values (1x1 maps) are summed in double, blocks of
// channels side by side, so that the reads stay in order. (NumPy's sum over the axes (0, 2, 3) had done this single-threaded at
// 19 GB/s: a third of a depthwise layer's backward on 16x512x14x14.)
#include <algorithm>
#include <cstring>
#include "channel_sums.hpp"

namespace convkit {
namespace {

typedef double Doubles __attribute__((vector_size(16)));
typedef float Floats __attribute__((vector_size(16)));
constexpr int kFloatRun = 16;   // vectors per run, over two accumulators: 8 values per lane
constexpr index_t kShortPlane = 16;     // planes shorter than this: channels side by side
constexpr index_t kChannelBlock = 256;  // channels per task there
constexpr index_t kParallelMin = index_t(1) << 18;   // fewer values: one thread (a team costs more)

template <class V, class T> inline V load(const T* p) { V v; std::memcpy(&v, p, sizeof v); return v; }

// Sum of one channel's planes, in double lanes.
struct ChannelSum {
    Doubles acc[2] = {};
    double tail = 0;

    void add(const float* x, index_t len) {
        index_t i = 0;
        while (i + 4 <= len) {   // a run
            Floats a{}, b{};
            int r = 0;
            for (; r < kFloatRun && i + 8 <= len; r += 2, i += 8) {
                a += load<Floats>(x + i);
                b += load<Floats>(x + i + 4);
            }
            if (r < kFloatRun && i + 4 <= len) {
                a += load<Floats>(x + i);
                i += 4;
            }
            const Floats s = a + b;
            acc[0] += Doubles{s[0], s[1]};
            acc[1] += Doubles{s[2], s[3]};
        }
        for (; i < len; ++i) tail += x[i];
    }
    void add(const double* x, index_t len) {
        index_t i = 0;
        for (; i + 4 <= len; i += 4) {
            acc[0] += load<Doubles>(x + i);
            acc[1] += load<Doubles>(x + i + 2);
        }
        for (; i < len; ++i) tail += x[i];
    }
    double total() const {
        const Doubles v = acc[0] + acc[1];
        return (v[0] + v[1]) + tail;
    }
};

}  // namespace

template <class T> void channel_sums(T* sums, const T* x, index_t n, index_t c_count, index_t p) {
    if (p < kShortPlane) {   // planes of a few values: blocks of channels side by side, read in order
        const index_t blocks = ceil_div(c_count, kChannelBlock);
#pragma omp parallel for num_threads(num_threads()) schedule(static) if (n * c_count * p >= kParallelMin)
        for (index_t b = 0; b < blocks; ++b) {
            const index_t c0 = b * kChannelBlock, len = std::min(kChannelBlock, c_count - c0);
            double acc[kChannelBlock] = {};
            for (index_t i = 0; i < n; ++i) {
                const T* row = x + (i * c_count + c0) * p;
                if (p == 1)   // (a loop of its own: it vectorises)
                    for (index_t c = 0; c < len; ++c) acc[c] += row[c];
                else
                    for (index_t c = 0; c < len; ++c)
                        for (index_t j = 0; j < p; ++j) acc[c] += row[c * p + j];
            }
            for (index_t c = 0; c < len; ++c) sums[c0 + c] = T(acc[c]);
        }
        return;
    }
#pragma omp parallel for num_threads(num_threads()) schedule(static)
    for (index_t c = 0; c < c_count; ++c) {
        ChannelSum sum;
        for (index_t i = 0; i < n; ++i) sum.add(x + (i * c_count + c) * p, p);
        sums[c] = T(sum.total());
    }
}

template void channel_sums<float>(float*, const float*, index_t, index_t, index_t);
template void channel_sums<double>(double*, const double*, index_t, index_t, index_t);

}  // namespace convkit
