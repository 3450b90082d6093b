// Index helpers of pool.cu and resample.cu (inlined by convkit/gpu/_runtime.py): integer
// arithmetic on index_t, the (plane, row, column) of a flat element, and index_reach.
//
// Index reach. Max-pool backward and max-unpool forward move values through saved indices: a
// scatter, which the GPU runs as a gather (one thread per written element, no atomics). For
// an element of a TARGET plane (TH, TW) the thread must find every element of the SOURCE
// plane (SH, SW) whose index points at it. Indices made by pooling stay near the target
// position proportional to their source position, center = floor(source * T / S) per axis;
// index_reach measures, over the whole index array, how far they stray: ahead = max(target -
// center), behind = max(center - target) per axis. Target t is then pointed at only from the
// sources whose center lies in [t - ahead, t + behind], a contiguous range per axis (tables
// built on the host: convkit/gpu/_gather.py). Exact for ANY indices; a few candidates per
// axis (about kernel / stride) for indices from pooling windows.
#pragma once

__device__ __forceinline__ index_t min_index(index_t a, index_t b) { return a < b ? a : b; }
__device__ __forceinline__ index_t max_index(index_t a, index_t b) { return a > b ? a : b; }
// ceil(a / b) for a >= 0, b > 0
__device__ __forceinline__ index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// plane, row, col of the flat element i of a (planes, rows, cols) array (two divisions).
__device__ __forceinline__ void unflatten(index_t i, index_t rows, index_t cols, index_t* plane, index_t* row,
                                          index_t* col) {
    const index_t plane_row = i / cols;
    *col = i - plane_row * cols;
    *plane = plane_row / rows;
    *row = plane_row - *plane * rows;
}

constexpr int kReachThreads = 256;    // blockDim.x of index_reach
constexpr int kReachFields = 5;       // per block: ahead_h, behind_h, ahead_w, behind_w, any index out of range

// partial (gridDim.x, 5): each block's reach over its grid-stride share of indices
// (planes, SH, SW), which hold flat offsets into (TH, TW) target planes; an index outside
// [0, TH*TW) sets field 4 instead. Maxima are exact, so the result does not depend on the
// launch geometry. T: unused (every kernel of a Source is instantiated per element type).
template <typename T>
__global__ void index_reach(index_t* partial, const index_t* __restrict__ indices, index_t count,
                            index_t source_h, index_t source_w, index_t target_h, index_t target_w) {
    __shared__ index_t reach[kReachFields][kReachThreads];
    index_t field[kReachFields] = {-target_h, -target_h, -target_w, -target_w, 0};
    CK_GRID_STRIDE_LOOP(i, count) {
        index_t plane, row, col;
        unflatten(i, source_h, source_w, &plane, &row, &col);
        const index_t v = indices[i];
        if (v < 0 || v >= target_h * target_w) {
            field[4] = 1;
            continue;
        }
        const index_t dh = v / target_w - row * target_h / source_h;
        const index_t dw = v % target_w - col * target_w / source_w;
        field[0] = max_index(field[0], dh), field[1] = max_index(field[1], -dh);
        field[2] = max_index(field[2], dw), field[3] = max_index(field[3], -dw);
    }
    for (int f = 0; f < kReachFields; ++f) reach[f][threadIdx.x] = field[f];
    __syncthreads();
    for (int half = kReachThreads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half)
            for (int f = 0; f < kReachFields; ++f)
                reach[f][threadIdx.x] = max_index(reach[f][threadIdx.x], reach[f][threadIdx.x + half]);
        __syncthreads();
    }
    if (threadIdx.x < kReachFields) partial[blockIdx.x * kReachFields + threadIdx.x] = reach[threadIdx.x][0];
}
