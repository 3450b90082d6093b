// convkit/src/matmul.hpp -- general matrix product and the linear (fully connected) layer.
//
//   matmul         C (m x n) = A (m x k) * B (k x n) (+ bias[j] on every row), A and B
//                  given by element strides (so transposed operands cost nothing), C
//                  row-major and contiguous; see matmul_impl.hpp for the two algorithms.
//   column_sums    sums (n) = sum over the m rows of G (m x n, row-major).
//   linear_*       the linear layer y = x W^T + b and its gradients, as matmuls:
//                    forward          y  (M x N) = x  (M x K) * W^T (K x N) + b
//                    backward_data    gx (M x K) = gy (M x N) * W   (N x K)
//                    backward_weight  gW (N x K) = gy^T (N x M) * x (M x K)
//                    backward_bias    gb (N)     = column sums of gy (M x N)
//                  with x (M, K), weight (N, K), y (M, N) C-contiguous.
//
// Every output is OVERWRITTEN, never accumulated into. Each call picks the widest
// instruction-set variant the CPU supports (active_isa() of conv2d.hpp).
#pragma once
#include "common.hpp"

namespace convkit {

struct MatmulSizes {
    index_t m, n, k;         // C (m x n) = A (m x k) * B (k x n)
    index_t a_row, a_col;    // element (i, p) of A at a[i*a_row + p*a_col]
    index_t b_row, b_col;    // element (p, j) of B at b[p*b_row + j*b_col]
};

struct LinearSizes {
    index_t m;               // rows of x: the product of its leading dimensions
    index_t in_features;     // K
    index_t out_features;    // N
};

template <class T> void matmul(T* c, const T* a, const T* b, const T* bias, const MatmulSizes& s);
template <class T> void column_sums(T* sums, const T* g, const MatmulSizes& s);   // uses s.m, s.n

// y (M, N) = x (M, K) * weight (N, K)^T + bias (N, or null)
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* bias, const LinearSizes& s) {
    const index_t K = s.in_features;
    matmul(y, x, w, bias, MatmulSizes{s.m, s.out_features, K, K, 1, 1, K});
}

// grad_x (M, K) = grad_y (M, N) * weight (N, K)
template <class T>
void linear_backward_data(T* grad_x, const T* grad_y, const T* w, const LinearSizes& s) {
    const index_t N = s.out_features, K = s.in_features;
    matmul<T>(grad_x, grad_y, w, nullptr, MatmulSizes{s.m, K, N, N, 1, K, 1});
}

// grad_w (N, K) = grad_y (M, N)^T * x (M, K)
template <class T>
void linear_backward_weight(T* grad_w, const T* grad_y, const T* x, const LinearSizes& s) {
    const index_t N = s.out_features, K = s.in_features;
    matmul<T>(grad_w, grad_y, x, nullptr, MatmulSizes{N, K, s.m, 1, N, K, 1});
}

// grad_b (N) = grad_y (M, N) summed over rows
template <class T>
void linear_backward_bias(T* grad_b, const T* grad_y, const LinearSizes& s) {
    column_sums(grad_b, grad_y, MatmulSizes{s.m, s.out_features, 0, 0, 0, 0, 0});
}

// The float and double instantiations of the functions above: once in each instruction-set
// variant (matmul_isa.cpp, inside namespace convkit::<isa>) and once in the dispatcher (matmul_dispatch.cpp).
#define CONVKIT_MATMUL_INSTANTIATE(T)                                                 \
    template void matmul<T>(T*, const T*, const T*, const T*, const MatmulSizes&);    \
    template void column_sums<T>(T*, const T*, const MatmulSizes&);

}  // namespace convkit
