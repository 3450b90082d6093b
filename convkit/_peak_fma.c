/* Peak FMA throughput of this machine, float32, per thread and for all threads together.
 *
 * The "peak" that `python -m convkit bench`, bench/RESULTS.md and docs/cpu-kernels.md measure
 * conv layers against:
 * 12 independent vector accumulators (enough to cover the FMA latency of 4-5 cycles on two
 * pipes), each updated by a fused multiply-add per step, in the widest vector the compiler
 * was told the CPU has (-march=native: 16 floats with AVX-512, 8 with AVX2, 4 otherwise).
 * Shipped inside the package; built and run by convkit/_peak.py (bench/peak.py reuses it):
 *   cc -O2 -march=native -fopenmp _peak_fma.c -o peak_fma
 * Output: one line "threads GFLOP/s" per thread count from 1 to argv[1] (default: all).
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
typedef float vec __attribute__((vector_size(LANES * sizeof(float))));
enum { ACCUMULATORS = 12 };

/* FLOPs done by one thread in `steps` steps; the result is returned so nothing is elided. */
static float fma_loop(long steps, float seed) {
    vec acc[ACCUMULATORS], mul = {0}, add = {0};
    mul += 1.0000001f;
    add += 1e-7f;
    for (int i = 0; i < ACCUMULATORS; ++i) acc[i] = (vec){0} + seed + (float)i;
    for (long s = 0; s < steps; ++s) {
#pragma GCC unroll 12
        for (int i = 0; i < ACCUMULATORS; ++i) acc[i] = acc[i] * mul + add;   /* contracted to FMA */
    }
    float sum = 0;
    for (int i = 0; i < ACCUMULATORS; ++i) sum += acc[i][0];
    return sum;
}

int main(int argc, char **argv) {
    int max_threads = argc > 1 ? atoi(argv[1]) : omp_get_num_procs();
    const long steps = 50000000;                     /* ~0.1-0.3 s per thread count */
    float sink = 0;
    for (int threads = 1; threads <= max_threads; ++threads) {
        double best = 0;
        for (int repeat = 0; repeat < 3; ++repeat) {  /* best of 3: these VMs are noisy */
            double t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
            sink += fma_loop(steps, (float)omp_get_thread_num());
            double seconds = omp_get_wtime() - t0;
            double gflops = 2.0 * LANES * ACCUMULATORS * steps * threads / seconds / 1e9;
            if (gflops > best) best = gflops;
        }
        printf("%d %.1f\n", threads, best);
    }
    fprintf(stderr, "(checksum %g, %d float lanes)\n", sink, LANES);
    return 0;
}
