# pyx/norm.pxi -- bindings of the norm family (batch norm, fold_batch_norm, group/layer/instance norm, local response norm); included by _cpu.pyx.
# Holds its own `cdef extern from "<header>.hpp" namespace "convkit" nogil:` block.
