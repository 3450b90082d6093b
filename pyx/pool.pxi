# pyx/pool.pxi -- bindings of the pool family (max/avg pooling 1-D/2-D, adaptive pooling, global pooling); included by _cpu.pyx.
# Holds its own `cdef extern from "<header>.hpp" namespace "convkit" nogil:` block.
