# pyx/transpose.pxi -- bindings of the transpose family (transposed convolution (conv_transpose1d/2d) and depthwise convolution); included by _cpu.pyx.
# Holds its own `cdef extern from "<header>.hpp" namespace "convkit" nogil:` block.
