"""RawModule / RawKernel: the CUDA source compiled by g++ against cuda_emulator.hpp.

The translation unit is `#include "cuda_emulator.hpp"`, the source (with a #line so g++'s
messages and __LINE__ refer to the .cu lines), and one accessor per name expression returning
ck_emu::describe(&<expr>): the kernel's parameter types and its launch function. The shared
library is cached under $CUDA_EMULATOR_CACHE, else $XDG_CACHE_HOME/convkit/cuda-emulator
(~/.cache/...), named by the SHA-256 of everything that goes into it, and written atomically
(compiled to a temporary name, then renamed), so concurrent test processes are safe.

Each launch checks the arguments against the parameters (a device array for each pointer,
with the pointee's element type; a NumPy scalar of the exact kind and size for each value
parameter; C-contiguous arrays only, since kernels ignore strides), then runs the grid and
checks the canary bytes around every array argument.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from ._core import ndarray

HEADER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cuda_emulator.hpp")
CXX_FLAGS = ["-std=c++17", "-O1", "-fPIC", "-shared", "-fvisibility=hidden", "-Wno-unknown-pragmas",
             "-Wno-attributes"]
MAX_PARAMS = 48                                   # ck_emu::kMaxParams
OTHER, POINTER, SIGNED, UNSIGNED, FLOATING, BOOL = range(6)   # ck_emu::ParamKind
_DTYPE_KIND = {"f": FLOATING, "i": SIGNED, "u": UNSIGNED, "b": BOOL}
_EXTERN_C_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)')


class EmulatorError(RuntimeError):
    """A launch that a GPU would fail, or a bug the emulator caught (out-of-bounds write,
    divergent barrier ...)."""


class CompileException(Exception):
    """g++ rejected the source (the message is g++'s)."""


class _ParamInfo(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("size", ctypes.c_int),
                ("pointee_kind", ctypes.c_int), ("pointee_size", ctypes.c_int)]


_LAUNCH = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint),
                           ctypes.POINTER(ctypes.c_uint), ctypes.c_ulonglong,
                           ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_ulonglong)


class _KernelInfo(ctypes.Structure):
    _fields_ = [("nparams", ctypes.c_int), ("params", _ParamInfo * MAX_PARAMS),
                ("kernel", ctypes.c_void_p), ("launch", _LAUNCH)]


def _ctype_name(kind: int, size: int) -> str:
    names = {(FLOATING, 4): "float", (FLOATING, 8): "double", (SIGNED, 1): "signed char",
             (SIGNED, 2): "short", (SIGNED, 4): "int", (SIGNED, 8): "long long",
             (UNSIGNED, 1): "unsigned char", (UNSIGNED, 2): "unsigned short",
             (UNSIGNED, 4): "unsigned int", (UNSIGNED, 8): "unsigned long long", (BOOL, 1): "bool"}
    return names.get((kind, size), f"<{size}-byte type>")


def _param_name(p) -> str:
    if p.kind == POINTER:
        return ("void" if p.pointee_size == 0 else _ctype_name(p.pointee_kind, p.pointee_size)) + "*"
    return _ctype_name(p.kind, p.size)


def _cache_dir() -> str:
    d = os.environ.get("CUDA_EMULATOR_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "convkit", "cuda-emulator")
    os.makedirs(d, exist_ok=True)
    return d


def compiler() -> str | None:
    """The C++ compiler the emulator uses ($CXX, else g++), or None if there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def _translation_unit(code: str, exprs: list[str]) -> str:
    lines = ['#include "cuda_emulator.hpp"', '#line 1 "kernel.cu"', code, '#line 1 "accessors"']
    for i, expr in enumerate(exprs):
        lines.append(f'extern "C" __attribute__((visibility("default"))) const ck_emu::KernelInfo* '
                     f'ck_kernel_{i}() {{ static const ck_emu::KernelInfo info = '
                     f'ck_emu::describe(&{expr}); return &info; }}')
    return "\n".join(lines) + "\n"


def _compile(code: str, options, exprs: list[str]) -> str:
    """Path of the shared library for (code, options, exprs), compiling it if not cached."""
    cxx = compiler()
    if cxx is None:
        raise CompileException("the CUDA emulator needs a C++ compiler (g++ or $CXX)")
    flags = CXX_FLAGS + [o for o in options if o.startswith(("-D", "-I", "-U"))]
    tu = _translation_unit(code, exprs)
    with open(HEADER, encoding="utf-8") as f:
        header = f.read()
    key = hashlib.sha256("\0".join([cxx, " ".join(flags), header, tu]).encode()).hexdigest()
    path = os.path.join(_cache_dir(), key[:32] + ".so")
    if os.path.exists(path):
        return path
    with tempfile.TemporaryDirectory(prefix="cuda-emulator-") as tmp:
        src = os.path.join(tmp, "kernel.cpp")
        with open(src, "w", encoding="utf-8") as f:
            f.write(tu)
        out = os.path.join(tmp, "kernel.so")
        run = subprocess.run([cxx, *flags, "-I", os.path.dirname(HEADER), src, "-o", out],
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise CompileException(f"g++ failed to compile the CUDA source for the emulator:\n"
                                   f"{run.stderr.strip()}")
        partial = f"{path}.{os.getpid()}.tmp"
        shutil.copyfile(out, partial)
        os.replace(partial, path)          # atomic: readers see a whole library or none
    return path


class RawModule:
    """cupy.RawModule(code=..., options=..., name_expressions=...), compiled on first use."""

    def __init__(self, code=None, path=None, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, name_expressions=None, jitify=False):
        if code is None:
            with open(path, encoding="utf-8") as f:
                code = f.read()
        self.code, self.options = code, tuple(options)
        self.name_expressions = list(name_expressions or ())
        self._exprs = self.name_expressions + [n for n in _EXTERN_C_KERNEL.findall(code)
                                               if n not in self.name_expressions]
        self._lib = None

    def _library(self):
        if self._lib is None:
            self._lib = ctypes.CDLL(_compile(self.code, self.options, self._exprs))
        return self._lib

    def compile(self, log_stream=None):
        self._library()

    def get_function(self, name: str) -> "RawKernel":
        if name not in self._exprs:
            raise KeyError(f"{name!r} is neither a name expression of this RawModule "
                           f"nor an extern \"C\" kernel of its source")
        accessor = getattr(self._library(), f"ck_kernel_{self._exprs.index(name)}")
        accessor.restype = ctypes.POINTER(_KernelInfo)
        return RawKernel._bound(name, accessor().contents)


class RawKernel:
    """A kernel; call it as kernel(grid, block, args, shared_mem=0)."""

    def __init__(self, code, name, options=(), backend="nvrtc", translate_cucomplex=False,
                 enable_cooperative_groups=False, jitify=False):
        kernel = RawModule(code=code, options=options).get_function(name)
        self.__dict__.update(kernel.__dict__)

    @classmethod
    def _bound(cls, name, info):
        obj = cls.__new__(cls)
        obj.name, obj._info = name, info
        obj.params = [info.params[i] for i in range(info.nparams)]
        return obj

    def __call__(self, grid, block, args, shared_mem=0, stream=None, enable_cooperative_groups=False):
        grid3, block3 = _dims(self.name, "grid", grid), _dims(self.name, "block", block)
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"{self.name}: args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: the kernel takes {len(self.params)} arguments, got {len(args)}")
        holders = [self._argument(i, a, p) for i, (a, p) in enumerate(zip(args, self.params))]
        argv = (ctypes.c_void_p * max(1, len(holders)))(*[ctypes.addressof(h) for h in holders])
        error = ctypes.create_string_buffer(4096)
        status = self._info.launch(self._info.kernel, (ctypes.c_uint * 3)(*grid3), (ctypes.c_uint * 3)(*block3),
                                   int(shared_mem), argv, error, len(error))
        self._check_canaries(args)
        if status != 0:
            raise EmulatorError(f"{self.name}: {error.value.decode(errors='replace')}")

    def _argument(self, i, a, p):
        """A ctypes buffer holding argument i's value, after checking it against parameter p."""
        expected = _param_name(p)
        if p.kind == POINTER:
            if not isinstance(a, ndarray):
                raise TypeError(f"{self.name}: argument {i} must be a cupy array for parameter type "
                                f"{expected}, got {type(a).__module__}.{type(a).__name__}")
            kind = _DTYPE_KIND.get(a.dtype.kind, OTHER)
            if p.pointee_size and (kind != p.pointee_kind or a.itemsize != p.pointee_size):
                raise TypeError(f"{self.name}: argument {i} is a {a.dtype} array but the parameter "
                                f"is {expected}")
            if not a.flags.c_contiguous:
                raise ValueError(f"{self.name}: argument {i} is a non-C-contiguous array (shape "
                                 f"{a.shape}, strides {a.strides}); kernels ignore strides")
            return ctypes.c_void_p(a.data.ptr)
        if p.kind == OTHER:
            raise TypeError(f"{self.name}: parameter {i} has a type the emulator cannot pass "
                            f"({p.size} bytes, not a pointer, integer or float)")
        if not isinstance(a, np.generic) or isinstance(a, np.ndarray):
            raise TypeError(f"{self.name}: argument {i} must be a NumPy scalar of type {expected}, "
                            f"got {type(a).__name__} {a!r}")
        if _DTYPE_KIND.get(a.dtype.kind, OTHER) != p.kind or a.itemsize != p.size:
            raise TypeError(f"{self.name}: argument {i} is a {a.dtype} scalar but the parameter "
                            f"is {expected}")
        return ctypes.create_string_buffer(a.tobytes(), p.size)

    def _check_canaries(self, args):
        for i, a in enumerate(args):
            if isinstance(a, ndarray):
                damage = a._mem.damaged()
                if damage is not None:
                    where, offset = damage
                    raise EmulatorError(f"{self.name}: wrote {where} of argument {i} (byte {offset} "
                                        f"of its {a._mem.nbytes}-byte allocation)")


def _dims(name, what, value) -> tuple[int, int, int]:
    dims = value if isinstance(value, tuple) else (value,)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                          for d in dims):
        raise TypeError(f"{name}: {what} must be an int or a tuple of 1-3 ints, got {value!r}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    if any(d < 0 or d >= 2**32 for d in dims):
        raise ValueError(f"{name}: {what} {value!r} out of range")
    return dims
