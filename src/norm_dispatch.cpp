// convkit/src/norm_dispatch.cpp -- the public norm entry points (batch_norm.hpp, group_norm.hpp,
// lrn.hpp): each call runs the instruction-set variant conv2d uses (convkit::active_isa(),
// CONVKIT_ISA in the environment, set_isa()).
#include "isa_dispatch.hpp"
#include "norm.hpp"

namespace convkit {

#define CONVKIT_DECLARE(ISA)                                                                              \
    namespace ISA {                                                                                       \
    template <class T> void batch_norm_forward_train(T*, T*, T*, const T*, const T*, const T*,            \
                                                     const BatchNormSizes&);                              \
    template <class T> void batch_norm_forward_eval(T*, const T*, const T*, const T*, const T*, const T*, \
                                                    const BatchNormSizes&);                               \
    template <class T> void batch_norm_backward_train(T*, T*, T*, const T*, const T*, const T*,           \
                                                      const BatchNormSizes&);                             \
    template <class T> void batch_norm_backward_eval(T*, T*, T*, const T*, const T*, const T*, const T*,  \
                                                     const T*, const BatchNormSizes&);                    \
    template <class T> void group_norm_forward(T*, double*, double*, const T*, const T*, const T*,        \
                                               const GroupNormSizes&);                                    \
    template <class T> void group_norm_backward(T*, T*, T*, const T*, const T*, const T*,                 \
                                                const GroupNormSizes&);                                   \
    template <class T> void local_response_norm_forward(T*, const T*, const LrnSizes&);                   \
    template <class T> void local_response_norm_backward(T*, const T*, const T*, const LrnSizes&);        \
    }
CONVKIT_DECLARE_VARIANTS()

template <class T>
void batch_norm_forward_train(T* y, T* running_mean, T* running_var, const T* x, const T* weight,
                              const T* bias, const BatchNormSizes& s) {
    CONVKIT_DISPATCH(batch_norm_forward_train, y, running_mean, running_var, x, weight, bias, s)
}
template <class T>
void batch_norm_forward_eval(T* y, const T* x, const T* running_mean, const T* running_var,
                             const T* weight, const T* bias, const BatchNormSizes& s) {
    CONVKIT_DISPATCH(batch_norm_forward_eval, y, x, running_mean, running_var, weight, bias, s)
}
template <class T>
void batch_norm_backward_train(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                               const T* weight, const BatchNormSizes& s) {
    CONVKIT_DISPATCH(batch_norm_backward_train, grad_x, grad_weight, grad_bias, grad_out, x, weight, s)
}
template <class T>
void batch_norm_backward_eval(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                              const T* running_mean, const T* running_var, const T* weight,
                              const BatchNormSizes& s) {
    CONVKIT_DISPATCH(batch_norm_backward_eval, grad_x, grad_weight, grad_bias, grad_out, x, running_mean,
                     running_var, weight, s)
}
template <class T>
void group_norm_forward(T* y, double* mean, double* var, const T* x, const T* weight, const T* bias,
                        const GroupNormSizes& s) {
    CONVKIT_DISPATCH(group_norm_forward, y, mean, var, x, weight, bias, s)
}
template <class T>
void group_norm_backward(T* grad_x, T* grad_weight, T* grad_bias, const T* grad_out, const T* x,
                         const T* weight, const GroupNormSizes& s) {
    CONVKIT_DISPATCH(group_norm_backward, grad_x, grad_weight, grad_bias, grad_out, x, weight, s)
}
template <class T> void local_response_norm_forward(T* y, const T* x, const LrnSizes& s) {
    CONVKIT_DISPATCH(local_response_norm_forward, y, x, s)
}
template <class T> void local_response_norm_backward(T* grad_x, const T* grad_out, const T* x, const LrnSizes& s) {
    CONVKIT_DISPATCH(local_response_norm_backward, grad_x, grad_out, x, s)
}

CONVKIT_NORM_INSTANTIATE()

}  // namespace convkit
