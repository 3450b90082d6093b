#!/usr/bin/env python3
"""CI: compile every CUDA Source with NVRTC exactly as CuPy's RawModule will on a GPU machine.

nvcc (.ci/compile_cuda.py) accepts things NVRTC does not: NVRTC has no standard headers and
no host compiler, and resolves kernels only through the name expressions. So this script
hands NVRTC what convkit.gpu._runtime.Source.kernel() hands CuPy -- read_source(file) (local
includes inlined), every name expression, and _runtime.NVRTC_OPTIONS -- for compute_80 and
compute_90, and checks that every name expression gets a lowered (mangled) name. It needs
only libnvrtc (pip install nvidia-cuda-nvrtc; no GPU, no driver, no CuPy) and prints one
line and exits 0 when the library is absent. Usage: python3 .ci/nvrtc_check.py
"""
from __future__ import annotations

import ctypes
import glob
import importlib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARCHS = ("compute_80", "compute_90")


def find_nvrtc() -> str | None:
    """libnvrtc from the nvidia-cuda-nvrtc wheel, a CUDA toolkit, or the loader's path."""
    candidates = []
    for entry in sys.path:
        candidates += glob.glob(os.path.join(entry or ".", "nvidia", "cu*", "lib", "libnvrtc.so*"))
        candidates += glob.glob(os.path.join(entry or ".", "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*"))
    candidates += glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*")
    candidates = [c for c in candidates if "builtins" not in c]
    return sorted(candidates)[-1] if candidates else None


class Nvrtc:
    def __init__(self, path: str):
        self.lib = ctypes.CDLL(path)
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def check(self, status: int, what: str):
        if status != 0:
            raise RuntimeError(f"{what}: {self.lib.nvrtcGetErrorString(status).decode()}")

    def version(self) -> str:
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        return f"{major.value}.{minor.value}"

    def compile(self, code: str, name: str, expressions: list[str], options: list[str]) -> tuple[bool, str]:
        """(success, log); success also requires a lowered name for every expression."""
        prog = ctypes.c_void_p()
        self.check(self.lib.nvrtcCreateProgram(ctypes.byref(prog), code.encode(), name.encode(), 0, None, None),
                   "nvrtcCreateProgram")
        try:
            for expr in expressions:
                self.check(self.lib.nvrtcAddNameExpression(prog, expr.encode()), f"add {expr}")
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            status = self.lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            self.check(self.lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "log size")
            log = ctypes.create_string_buffer(size.value)
            self.check(self.lib.nvrtcGetProgramLog(prog, log), "log")
            text = log.value.decode(errors="replace").strip()
            if status != 0:
                return False, text
            missing = []
            for expr in expressions:
                lowered = ctypes.c_char_p()
                if self.lib.nvrtcGetLoweredName(prog, expr.encode(), ctypes.byref(lowered)) != 0:
                    missing.append(expr)
            if missing:
                return False, text + "\nno kernel for: " + ", ".join(missing)
            return True, text
        finally:
            self.lib.nvrtcDestroyProgram(ctypes.byref(prog))


def main() -> int:
    path = find_nvrtc()
    if path is None:
        print("== nvrtc: libnvrtc not found (pip install nvidia-cuda-nvrtc): NVRTC compile not checked")
        return 0
    nvrtc = Nvrtc(path)
    print(f"== nvrtc {nvrtc.version()} ({path})")
    sys.path.insert(0, ROOT)                     # the checkout's convkit, not an installed one
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from compile_cuda import family_modules
    runtime = importlib.import_module("convkit.gpu._runtime")
    for module in family_modules():
        importlib.import_module(module)          # declares its Sources
    ok = True
    for source in runtime.SOURCES:
        exprs = source.name_expressions()
        for arch in ARCHS:
            good, log = nvrtc.compile(runtime.read_source(source.filename), source.filename, exprs,
                                      [*runtime.NVRTC_OPTIONS, f"-arch={arch}"])
            print(f"== nvrtc {source.filename} {arch}: {len(exprs)} kernels {'ok' if good else 'FAILED'}")
            if log:
                print(log)
            ok &= good
    print(f"== nvrtc: {'every Source compiles' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
