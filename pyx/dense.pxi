# pyx/dense.pxi -- bindings of the dense family (linear, relu, dropout, flatten, log_softmax, cross_entropy); included by _cpu.pyx.
# Holds its own `cdef extern from "<header>.hpp" namespace "convkit" nogil:` block.
