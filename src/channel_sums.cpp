// convkit/src/channel_sums.cpp -- see channel_sums.hpp.
//
// Memory-bound: each channel's N planes are read once, in order, on 16-byte vectors of the
// baseline instruction set (enough to saturate memory on two threads). float values are
// summed in float lanes over runs of at most 8 values per lane (two accumulators, for two
// chains of adds in flight), each run then added into double lanes; the lanes are summed in
// a fixed order at the end. So a sum carries about the rounding of a pairwise float sum,
// whatever N*P. (NumPy's sum over the axes (0, 2, 3) had done this single-threaded at
// 19 GB/s: a third of a depthwise layer's backward on 16x512x14x14.)
#include <cstring>
#include "channel_sums.hpp"

namespace convkit {
namespace {

typedef double Doubles __attribute__((vector_size(16)));
typedef float Floats __attribute__((vector_size(16)));
constexpr int kFloatRun = 16;   // vectors per run, over two accumulators: 8 values per lane

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
