# pyx/resample.pxi -- bindings of the resample family (max-unpooling and upsampling (nearest, bed of nails, bilinear)); included by _cpu.pyx.
# Holds its own `cdef extern from "<header>.hpp" namespace "convkit" nogil:` block.
