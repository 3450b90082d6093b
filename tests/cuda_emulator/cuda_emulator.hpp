// The CUDA execution model on the host, for running convkit/gpu/*.cu under g++ in tests.
//
// The fake cupy's RawModule (tests/cuda_emulator/cupy/_raw.py) compiles
//     #include "cuda_emulator.hpp"  +  the .cu source  +  one accessor per name expression
// into a shared library; each accessor returns ck_emu::describe(&kernel<...>): the kernel's
// parameter types (so Python can check every launch argument) and a launch function.
//
// Model: blocks run one after another on the calling thread (in order of their linear index,
// threads too; CUDA_EMULATOR_ORDER=reverse runs both backwards, so order-dependent results --
// races -- show as differences between two runs). Each CUDA thread of a block is a fiber
// (stacks allocated once and reused; on x86-64 a 16-instruction register switch, elsewhere
// ucontext, whose signal-mask system calls make barriers ~15x slower). __syncthreads() yields
// to a scheduler that releases the barrier once every live thread of the block waits at it, and
// reports threads waiting at different barriers ("divergent __syncthreads"; a barrier is its
// call site, told apart by __COUNTER__, even two on one line). Shuffles are two barrier phases
// around a per-block exchange buffer (lanes grouped by warps of 32). If no thread of the first
// block reaches a barrier or shuffle, the other blocks' threads run as plain calls (fast path);
// a barrier reached there is reported (CUDA_EMULATOR_FIBERS=1 forces fibers everywhere).
// __shared__ is `thread_local` (block-scope thread_local implies static: one copy per kernel
// instance, shared by the block's fibers); dynamic shared memory is the kernel's
//     extern __shared__ unsigned char ck_dynamic_smem[];
// which names the global buffer defined below, filled with 0xFF (NaN) before each block and
// checked for writes past the launch's size afterwards. Launch state lives in this library
// (internal linkage) and a mutex serialises launches of one library across host threads.
#pragma once

// Lets a source select emulator-only code (e.g. convkit/gpu/mma.cuh: no inline PTX here).
#define CUDA_EMULATOR 1

#include <math.h>
#include <ucontext.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ------------------------------------------------------------------ qualifiers and types
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ thread_local

struct uint3 { unsigned int x, y, z; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

constexpr int ck_emu_max_dynamic_smem = 48 * 1024;
constexpr int ck_emu_smem_guard = 256;
// The one dynamic shared memory buffer (see the header comment); hidden visibility keeps it
// per library.
__attribute__((visibility("hidden"), aligned(256)))
thread_local unsigned char ck_dynamic_smem[ck_emu_max_dynamic_smem + ck_emu_smem_guard];

namespace ck_emu {

struct Error : std::exception {
    std::string msg;
    explicit Error(std::string m) : msg(std::move(m)) {}
    const char* what() const noexcept override { return msg.c_str(); }
};

namespace {

enum WaitKind : int { RUNNING = 0, BARRIER = 1, SHUFFLE_WRITE = 2, SHUFFLE_READ = 3, DONE = 4 };
constexpr int kStackBytes = 64 * 1024;
constexpr int kMaxThreads = 1024;

void fiber_main();

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores the stack pointer in *from,
// switches to the stack `to` and restores them from there. (The FP control words are not
// switched: kernels never change them, so all fibers share the host thread's.)
extern "C" void ck_emu_switch(void** from, void* to);
asm(R"(
    .text
    .p2align 4
    .hidden ck_emu_switch
    .globl ck_emu_switch
    .type ck_emu_switch, @function
ck_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size ck_emu_switch, .-ck_emu_switch
)");

struct Context { void* sp = nullptr; };

inline void switch_context(Context& from, Context& to) { ck_emu_switch(&from.sp, to.sp); }

// A stack that ck_emu_switch "returns" into fiber_main from: six registers, then fiber_main's
// address in the return slot (16-byte aligned, as a call would leave it).
inline void start_context(Context& c, unsigned char* stack, std::size_t bytes) {
    auto top = reinterpret_cast<std::uintptr_t>(stack + bytes) & ~std::uintptr_t(15);
    auto* slot = reinterpret_cast<std::uint64_t*>(top - 16);       // return address slot
    slot[0] = reinterpret_cast<std::uint64_t>(&fiber_main);
    slot[1] = 0;
    std::uint64_t* sp = slot - 6;                                  // r15 r14 r13 r12 rbx rbp
    for (int i = 0; i < 6; ++i) sp[i] = 0;
    c.sp = sp;
}
#else
struct Context { ucontext_t uc; };

inline void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

inline void start_context(Context& c, unsigned char* stack, std::size_t bytes) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, fiber_main, 0);
}
#endif

struct Fiber {
    Context context;
    unsigned char* stack = nullptr;   // kStackBytes usable, a guard page below
    int kind = RUNNING;
    int site = 0;                      // which barrier (a __COUNTER__ value per call site)
    int line = 0;
    uint3 index{0, 0, 0};
};

// Launch state of this library (internal linkage: one per compiled module).
struct State {
    uint3 thread_idx{0, 0, 0}, block_idx{0, 0, 0};
    uint3 block_dim{1, 1, 1}, grid_dim{1, 1, 1};
    bool fibers_on = false;            // the current block runs as fibers
    bool barrier_seen = false;         // some thread of the current block reached a barrier/shuffle
    bool reverse = false;              // CUDA_EMULATOR_ORDER=reverse: last block/thread first
    int current = 0;                   // linear index of the running thread (fiber mode)
    std::vector<Fiber> fibers;
    Context scheduler;
    unsigned long long shuffle_slots[kMaxThreads];
    void (*body)(void*) = nullptr;     // runs the kernel for the current thread
    void* body_arg = nullptr;
    std::string fiber_error;           // an exception caught inside a fiber
    std::mutex launch_mutex;
};
State g;

std::string fmt3(uint3 v) {
    return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::string where() { return "block " + fmt3(g.block_idx) + " thread " + fmt3(g.thread_idx); }

// Suspends the running fiber at a barrier of `kind` (at source `line`) until the scheduler
// releases it; outside fiber mode, a barrier is an error (the fast path cannot suspend).
void wait_at(int kind, int site, int line) {
    if (!g.fibers_on)
        throw Error(where() + " reached __syncthreads/shuffle (line " + std::to_string(line) +
                    ") but no thread of the first block run did, so this launch ran without fibers; "
                    "set CUDA_EMULATOR_FIBERS=1 to run every block as fibers");
    g.barrier_seen = true;
    Fiber& f = g.fibers[g.current];
    f.kind = kind;
    f.site = site;
    f.line = line;
    switch_context(f.context, g.scheduler);
}

// The first function of every fiber: runs the thread, then hands back to the scheduler for good.
void fiber_main() {
    try {
        g.body(g.body_arg);
    } catch (const std::exception& e) {
        if (g.fiber_error.empty()) g.fiber_error = e.what();
    } catch (...) {
        if (g.fiber_error.empty()) g.fiber_error = "unknown exception in a kernel thread";
    }
    Fiber& f = g.fibers[g.current];
    f.kind = DONE;
    switch_context(f.context, g.scheduler);   // never resumed
    std::abort();
}

void ensure_fibers(int n) {
    long page = sysconf(_SC_PAGESIZE);
    while ((int)g.fibers.size() < n) {
        Fiber f;
        void* mem = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (mem == MAP_FAILED) throw Error("cannot allocate fiber stacks");
        mprotect(mem, page, PROT_NONE);    // overflow faults instead of corrupting a neighbour
        f.stack = static_cast<unsigned char*>(mem) + page;
        g.fibers.push_back(f);
    }
}

const char* kind_name(int kind) {
    return kind == BARRIER ? "__syncthreads" : "a shuffle";
}

// Runs the current block (g.block_idx) with one fiber per thread.
void run_block_fibers(int nthreads) {
    const uint3 bd = g.block_dim;
    for (int t = 0; t < nthreads; ++t) {
        Fiber& f = g.fibers[t];
        f.index = uint3{unsigned(t % bd.x), unsigned(t / bd.x % bd.y), unsigned(t / (bd.x * bd.y))};
        f.kind = RUNNING;
        start_context(f.context, f.stack, kStackBytes);
    }
    g.fibers_on = true;
    for (;;) {
        for (int k = 0; k < nthreads; ++k) {   // run every thread up to its next barrier
            const int t = g.reverse ? nthreads - 1 - k : k;
            Fiber& f = g.fibers[t];
            if (f.kind == DONE) continue;
            f.kind = RUNNING;
            g.current = t;
            g.thread_idx = f.index;
            switch_context(g.scheduler, f.context);
            if (!g.fiber_error.empty()) {
                std::string e = g.fiber_error;
                g.fiber_error.clear();
                g.fibers_on = false;
                throw Error(e);
            }
        }
        int first = -1, done = 0;
        for (int t = 0; t < nthreads; ++t) {   // everyone waits at one barrier, or is done
            const Fiber& f = g.fibers[t];
            if (f.kind == DONE) { ++done; continue; }
            if (first < 0) { first = t; continue; }
            const Fiber& a = g.fibers[first];
            if (f.kind != a.kind || f.site != a.site)
                throw Error("divergent __syncthreads in block " + fmt3(g.block_idx) + ": thread " +
                            fmt3(a.index) + " waits at " + kind_name(a.kind) + " (line " +
                            std::to_string(a.line) + "), thread " + fmt3(f.index) + " at " +
                            kind_name(f.kind) + " (line " + std::to_string(f.line) + ")");
        }
        if (first < 0) break;
        if (done > 0 && g.fibers[first].kind != BARRIER)
            throw Error("shuffle (line " + std::to_string(g.fibers[first].line) + ") in block " +
                        fmt3(g.block_idx) + " not executed by every thread: " + std::to_string(done) +
                        " of " + std::to_string(nthreads) + " threads have exited");
    }
    g.fibers_on = false;
}

// Runs the current block with plain calls, one thread after another.
void run_block_plain(int nthreads) {
    const uint3 bd = g.block_dim;
    for (int k = 0; k < nthreads; ++k) {
        const int t = g.reverse ? nthreads - 1 - k : k;
        g.thread_idx = uint3{unsigned(t % bd.x), unsigned(t / bd.x % bd.y), unsigned(t / (bd.x * bd.y))};
        g.body(g.body_arg);
    }
}

void check_launch(dim3 grid, dim3 block, unsigned long long shared_mem) {
    unsigned long long threads = 1ull * block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0)
        throw Error("invalid launch: grid " + fmt3({grid.x, grid.y, grid.z}) + " block " +
                    fmt3({block.x, block.y, block.z}) + " has a zero dimension");
    if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
        throw Error("invalid launch: block " + fmt3({block.x, block.y, block.z}) +
                    " exceeds 1024 threads (or 1024 x 1024 x 64)");
    if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
        throw Error("invalid launch: grid " + fmt3({grid.x, grid.y, grid.z}) +
                    " exceeds 2**31-1 x 65535 x 65535 blocks");
    if (shared_mem > (unsigned long long)ck_emu_max_dynamic_smem)
        throw Error("invalid launch: " + std::to_string(shared_mem) +
                    " bytes of dynamic shared memory exceed 48 KiB");
}

void check_smem_guard(unsigned long long shared_mem) {
    for (int i = 0; i < ck_emu_smem_guard; ++i)
        if (ck_dynamic_smem[shared_mem + i] != 0xFF)
            throw Error("block " + fmt3(g.block_idx) + " wrote dynamic shared memory byte " +
                        std::to_string(shared_mem + i) + ", past the launch's " +
                        std::to_string(shared_mem) + " bytes");
}

void run_grid(dim3 grid, dim3 block, unsigned long long shared_mem, void (*body)(void*), void* arg) {
    check_launch(grid, block, shared_mem);
    const int nthreads = int(block.x * block.y * block.z);
    const char* fibers_env = std::getenv("CUDA_EMULATOR_FIBERS");
    const char* order_env = std::getenv("CUDA_EMULATOR_ORDER");
    const bool always_fibers = fibers_env && fibers_env[0] == '1';
    g.reverse = order_env && std::strcmp(order_env, "reverse") == 0;
    ensure_fibers(nthreads);
    g.grid_dim = uint3{grid.x, grid.y, grid.z};
    g.block_dim = uint3{block.x, block.y, block.z};
    g.body = body;
    g.body_arg = arg;
    g.fibers_on = false;
    g.fiber_error.clear();
    bool use_fibers = true;
    const unsigned long long blocks = 1ull * grid.x * grid.y * grid.z;
    for (unsigned long long k = 0; k < blocks; ++k) {
        const unsigned long long b = g.reverse ? blocks - 1 - k : k;
        g.block_idx = uint3{unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / grid.x / grid.y)};
        if (shared_mem) std::memset(ck_dynamic_smem, 0xFF, shared_mem + ck_emu_smem_guard);
        g.barrier_seen = false;
        if (use_fibers) {
            run_block_fibers(nthreads);
            if (!g.barrier_seen && !always_fibers) use_fibers = false;   // fast path from now on
        } else {
            run_block_plain(nthreads);
        }
        if (shared_mem) check_smem_guard(shared_mem);
    }
}

}  // namespace

// ------------------------------------------------------------------ barriers and shuffles
inline void syncthreads(int site, int line) { wait_at(BARRIER, site, line); }

enum ShuffleMode { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR };

template <typename T>
T shuffle(int site, int line, ShuffleMode mode, unsigned mask, T var, int arg, int width) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    if (mask != 0xffffffffu)
        throw Error(where() + ": shuffle with mask " + std::to_string(mask) +
                    " (the emulator supports only the full mask 0xffffffff)");
    if (width <= 0 || width > 32 || (width & (width - 1)))
        throw Error(where() + ": shuffle width " + std::to_string(width) + " is not a power of 2 <= 32");
    if (!g.fibers_on) wait_at(SHUFFLE_WRITE, site, line);   // reports the fast-path error
    const int tid = g.current;
    std::memcpy(&g.shuffle_slots[tid], &var, sizeof(T));
    wait_at(SHUFFLE_WRITE, site, line);   // every lane has written
    const int lane = tid % 32, seg = lane / width * width;   // segment start within the warp
    int src;
    switch (mode) {
        case SHFL_IDX:  src = seg + ((arg % width) + width) % width; break;
        case SHFL_UP:   src = lane - arg >= seg ? lane - arg : lane; break;
        case SHFL_DOWN: src = lane + arg < seg + width ? lane + arg : lane; break;
        default:        src = (lane ^ arg) < seg + width ? (lane ^ arg) : lane; break;
    }
    src += tid - lane;
    const int nthreads = int(g.block_dim.x * g.block_dim.y * g.block_dim.z);
    T result = var;
    if (src < nthreads) std::memcpy(&result, &g.shuffle_slots[src], sizeof(T));
    wait_at(SHUFFLE_READ, site, line);    // every lane has read before the slots are reused
    return result;
}

// ------------------------------------------------------------------ TF32 tensor-core emulation
// For convkit/gpu/mma.cuh (the only place kernels use them): cvt.rna.tf32.f32 and one
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, written from the PTX ISA's fragment
// layout (see mma.cuh), independently of how kernels index their fragments.

// cvt.rna.tf32.f32: round the float's bits to a 10-bit mantissa, to nearest, ties away from
// zero (add half of the dropped 13 bits' unit, then clear them; a carry bumps the exponent,
// and values at or past the largest TF32 + half a unit become infinity, as RNA rounding
// does). Infinities stay; NaNs stay NaN (quiet, low bits cleared).
inline unsigned cvt_rna_tf32(float x) {
    unsigned u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return (u & 0x007fffffu) ? (u | 0x00400000u) & 0xffffe000u : u;
    return (u + 0x1000u) & 0xffffe000u;
}

namespace {
struct MmaFragments { unsigned a[4], b[2]; };
MmaFragments mma_slots[kMaxThreads];
constexpr int kMmaSite = -1;   // one meeting point for every mma call (sites are >= 0 otherwise)

float tf32_operand(unsigned bits) {   // the tensor core reads only the top 19 bits
    bits &= 0xffffe000u;
    float v;
    std::memcpy(&v, &bits, 4);
    return v;
}
}  // namespace

// Warp-collective: every lane stores its A and B fragments, meets the others (like a
// shuffle: the whole block, uniformly), computes its four D elements, meets again.
inline void mma_m16n8k8_tf32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], int line) {
    if (!g.fibers_on) wait_at(SHUFFLE_WRITE, kMmaSite, line);   // reports the fast-path error
    const int tid = g.current, lane = tid % 32, warp0 = tid - lane;
    const int nthreads = int(g.block_dim.x * g.block_dim.y * g.block_dim.z);
    if (warp0 + 32 > nthreads)
        throw Error(where() + ": mma.sync in a partial warp (block of " + std::to_string(nthreads) + " threads)");
    for (int i = 0; i < 4; ++i) mma_slots[tid].a[i] = a[i];
    for (int i = 0; i < 2; ++i) mma_slots[tid].b[i] = b[i];
    wait_at(SHUFFLE_WRITE, kMmaSite, line);
    const int group = lane / 4, tig = lane % 4;
    float out[4];
    for (int e = 0; e < 4; ++e) {
        const int row = group + 8 * (e / 2), col = 2 * tig + e % 2;
        float acc = d[e];
        for (int k = 0; k < 8; ++k) {
            // A[row][k]: lane 4 * (row % 8) + k % 4, register (row >= 8) + 2 * (k >= 4)
            const unsigned av = mma_slots[warp0 + 4 * (row % 8) + k % 4].a[(row / 8) + 2 * (k / 4)];
            // B[k][col]: lane 4 * col + k % 4, register k >= 4
            const unsigned bv = mma_slots[warp0 + 4 * col + k % 4].b[k / 4];
            acc += tf32_operand(av) * tf32_operand(bv);   // exact product (11 x 11 bits), float sum
        }
        out[e] = acc;
    }
    wait_at(SHUFFLE_READ, kMmaSite, line);   // every lane has read before the slots are reused
    for (int e = 0; e < 4; ++e) d[e] = out[e];
}

// ------------------------------------------------------------------ kernel description
enum ParamKind : int { OTHER = 0, POINTER = 1, SIGNED = 2, UNSIGNED = 3, FLOATING = 4, BOOL = 5 };

struct ParamInfo {
    int kind, size;                 // the parameter itself
    int pointee_kind, pointee_size; // for pointers (pointee_kind OTHER with size 0: void)
};

constexpr int kMaxParams = 48;
typedef int (*LaunchFn)(void* kernel, const unsigned* grid, const unsigned* block,
                        unsigned long long shared_mem, void** args, char* error, unsigned long long error_size);

struct KernelInfo {
    int nparams;
    ParamInfo params[kMaxParams];
    void* kernel;
    LaunchFn launch;
};

template <typename T>
constexpr int kind_of() {
    if (std::is_same<T, bool>::value) return BOOL;
    if (std::is_pointer<T>::value) return POINTER;
    if (std::is_floating_point<T>::value) return FLOATING;
    if (std::is_integral<T>::value) return std::is_signed<T>::value ? SIGNED : UNSIGNED;
    return OTHER;
}

template <typename T>
ParamInfo param_info() {
    ParamInfo p{kind_of<T>(), int(sizeof(T)), OTHER, 0};
    if (std::is_pointer<T>::value) {
        using U = std::remove_cv_t<std::remove_pointer_t<T>>;
        p.pointee_kind = kind_of<U>();
        p.pointee_size = std::is_void<U>::value ? 0 : int(sizeof(std::conditional_t<std::is_void<U>::value, char, U>));
    }
    return p;
}

template <typename... Args>
struct Invocation {
    void (*kernel)(Args...);
    std::tuple<std::decay_t<Args>...> values;

    static void run(void* self) {
        auto* inv = static_cast<Invocation*>(self);
        std::apply(inv->kernel, inv->values);   // a copy of the parameters per thread, like CUDA
    }
};

template <typename... Args, std::size_t... I>
int launch_impl(void* kernel, const unsigned* grid, const unsigned* block, unsigned long long shared_mem,
                void** args, char* error, unsigned long long error_size, std::index_sequence<I...>) {
    std::lock_guard<std::mutex> lock(g.launch_mutex);
    try {
        Invocation<Args...> inv{reinterpret_cast<void (*)(Args...)>(kernel),
                                std::tuple<std::decay_t<Args>...>(*static_cast<std::decay_t<Args>*>(args[I])...)};
        run_grid(dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]), shared_mem,
                 &Invocation<Args...>::run, &inv);
        return 0;
    } catch (const std::exception& e) {
        g.fibers_on = false;
        std::strncpy(error, e.what(), error_size - 1);
        error[error_size - 1] = 0;
        return 1;
    }
}

template <typename... Args>
int launch(void* kernel, const unsigned* grid, const unsigned* block, unsigned long long shared_mem,
           void** args, char* error, unsigned long long error_size) {
    return launch_impl<Args...>(kernel, grid, block, shared_mem, args, error, error_size,
                                std::index_sequence_for<Args...>{});
}

template <typename... Args>
KernelInfo describe(void (*kernel)(Args...)) {
    static_assert(sizeof...(Args) <= kMaxParams, "too many kernel parameters");
    KernelInfo info{};
    info.nparams = int(sizeof...(Args));
    ParamInfo params[] = {param_info<std::decay_t<Args>>()..., ParamInfo{}};
    for (int i = 0; i < info.nparams; ++i) info.params[i] = params[i];
    info.kernel = reinterpret_cast<void*>(kernel);
    info.launch = &launch<Args...>;
    return info;
}

}  // namespace ck_emu

// ------------------------------------------------------------------ built-in variables
#define threadIdx (static_cast<const uint3&>(ck_emu::g.thread_idx))
#define blockIdx (static_cast<const uint3&>(ck_emu::g.block_idx))
#define blockDim (static_cast<const uint3&>(ck_emu::g.block_dim))
#define gridDim (static_cast<const uint3&>(ck_emu::g.grid_dim))
#define warpSize 32

#define __syncthreads() ck_emu::syncthreads(__COUNTER__, __LINE__)
#define __shfl_sync(...) ck_emu::shuffle_call(__COUNTER__, __LINE__, ck_emu::SHFL_IDX, __VA_ARGS__)
#define __shfl_up_sync(...) ck_emu::shuffle_call(__COUNTER__, __LINE__, ck_emu::SHFL_UP, __VA_ARGS__)
#define __shfl_down_sync(...) ck_emu::shuffle_call(__COUNTER__, __LINE__, ck_emu::SHFL_DOWN, __VA_ARGS__)
#define __shfl_xor_sync(...) ck_emu::shuffle_call(__COUNTER__, __LINE__, ck_emu::SHFL_XOR, __VA_ARGS__)

namespace ck_emu {
template <typename T>
T shuffle_call(int site, int line, ShuffleMode mode, unsigned mask, T var, int arg, int width = 32) {
    return shuffle(site, line, mode, mask, var, arg, width);
}
}  // namespace ck_emu

inline void __threadfence() {}
inline void __threadfence_block() {}

// ------------------------------------------------------------------ memory built-ins
template <typename T> inline T __ldg(const T* p) { return *p; }

// Fibers are cooperative (no preemption), so atomics are plain read-modify-writes.
template <typename T> inline T atomicAdd(T* p, T v) { T old = *p; *p = old + v; return old; }
template <typename T> inline T atomicSub(T* p, T v) { T old = *p; *p = old - v; return old; }
template <typename T> inline T atomicMax(T* p, T v) { T old = *p; if (v > old) *p = v; return old; }
template <typename T> inline T atomicMin(T* p, T v) { T old = *p; if (v < old) *p = v; return old; }
template <typename T> inline T atomicExch(T* p, T v) { T old = *p; *p = v; return old; }
template <typename T> inline T atomicCAS(T* p, T cmp, T v) { T old = *p; if (old == cmp) *p = v; return old; }

// ------------------------------------------------------------------ math built-ins
// <math.h> provides the C functions and, in C++, the float overloads (expf and exp(float)).
// CUDA's min/max accept mixed argument types (the usual arithmetic conversions).
template <typename A, typename B>
inline std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <typename A, typename B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float rsqrt(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline double __drcp_rn(double x) { return 1.0 / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline double __dsqrt_rn(double x) { return sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __float2int_rz(float x) { return int(x); }
inline int __float2int_rd(float x) { return int(floorf(x)); }
inline int __float2int_rn(float x) { return int(nearbyintf(x)); }
inline int __double2int_rz(double x) { return int(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
