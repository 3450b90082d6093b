// convkit/src/threads.cpp -- the one thread-count setting of the CPU backend.
//
// omp_set_num_threads() only affects the calling thread, but kernels may be called
// from any Python thread, so the count lives in one process-wide atomic that every
// parallel region reads through num_threads().
#include <atomic>
#include "common.hpp"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit {

static int default_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static std::atomic<int> g_num_threads{default_threads()};

int num_threads() { return g_num_threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 1, std::memory_order_relaxed); }

int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

bool openmp_enabled() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace convkit
