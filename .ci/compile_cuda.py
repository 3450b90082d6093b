#!/usr/bin/env python3
"""CI: compile every CUDA kernel of convkit/gpu with nvcc (sm_80 and sm_90) and print its
resource usage (registers, shared memory, spills).

Kernels are templates, so compiling a .cu file alone instantiates nothing. The name
expressions each family module declares (`Source("pool.cu", ["max_pool2d_forward", ...])`)
say which instantiations CuPy asks NVRTC for; this script imports every convkit/gpu/<family>.py
from the checkout (no compiled convkit._cpu and no CuPy needed), and for every entry of
convkit.gpu._runtime.SOURCES compiles one translation unit

    read_source(file)                                  # the .cu with its #includes inlined
    static void* ck_instances[] = {(void*)&expr, ...};  # every name expression, float and double

with `nvcc -std=c++17 -gencode ...sm_80 -gencode ...sm_90 --resource-usage -c`. A .cu file no
Source names is compiled as it is. Any failure exits non-zero; without nvcc it prints a line
and exits 0. Usage: python3 .ci/compile_cuda.py [--quiet]   (from anywhere)
"""
from __future__ import annotations

import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_DIR = os.path.join(ROOT, "convkit", "gpu")
NVCC_FLAGS = ["-std=c++17", "-gencode", "arch=compute_80,code=sm_80",
              "-gencode", "arch=compute_90,code=sm_90", "--resource-usage"]
_ENTRY = re.compile(r"Compiling entry function '(\w+)' for '(sm_\d+)'")
_USED = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")


def family_modules() -> list[str]:
    """convkit.gpu.<family> for every convkit/gpu/<family>.py (private modules excluded)."""
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(GPU_DIR, "*.py")))
    return [f"convkit.gpu.{n}" for n in names if not n.startswith("_")]


def translation_unit(runtime, source) -> str:
    instances = ",\n    ".join(f"(void*)&{expr}" for expr in source.name_expressions())
    return (f"{runtime.read_source(source.filename)}\n\n"
            f"// every name expression of {source.filename}'s Source (what NVRTC is asked for)\n"
            f"static void* ck_instances[] __attribute__((unused)) = {{\n    {instances}\n}};\n")


def demangler():
    """A function turning mangled kernel names into C++ (cu++filt / c++filt), or identity."""
    tool = shutil.which("cu++filt") or shutil.which("c++filt")
    if tool is None:
        return lambda names: names
    def demangle(names):
        out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True)
        lines = out.stdout.splitlines()
        return lines if out.returncode == 0 and len(lines) == len(names) else names
    return demangle


def resource_table(ptxas_output: str, demangle) -> list[str]:
    """One line per (kernel, arch): registers, static smem, spills."""
    rows, current = [], None
    for line in ptxas_output.splitlines():
        m = _ENTRY.search(line)
        if m:
            current = [m.group(1), m.group(2), "?", "0", "0/0"]
            rows.append(current)
            continue
        if current is None:
            continue
        if (m := _USED.search(line)):
            current[2] = m.group(1)
            if (s := _SMEM.search(line)):
                current[3] = s.group(1)
        if (m := _SPILL.search(line)):
            current[4] = f"{m.group(1)}/{m.group(2)}"
    names = demangle([r[0] for r in rows])
    table = sorted((name, arch, regs, smem, spill) for (_, arch, regs, smem, spill), name in zip(rows, names))
    return [f"    {arch}  regs {regs:>3}  smem {smem:>6} B  spill st/ld {spill:>7}  {name}"
            for name, arch, regs, smem, spill in table]


def nvcc_compile(nvcc: str, path: str, label: str, quiet: bool, demangle) -> bool:
    print(f"== nvcc {label}", flush=True)
    run = subprocess.run([nvcc, *NVCC_FLAGS, "-c", "-x", "cu", path, "-o", os.devnull],
                         capture_output=True, text=True)
    output = run.stdout + run.stderr
    if run.returncode != 0:
        print(output.rstrip())
        print(f"!! nvcc failed on {label} (translation unit: {path})")
        return False
    if not quiet:
        print("\n".join(resource_table(output, demangle)))
    warnings = [ln for ln in output.splitlines() if "warning" in ln.lower()]
    if warnings:
        print("\n".join(warnings))
    return True


def main(argv: list[str]) -> int:
    quiet = "--quiet" in argv
    nvcc = shutil.which("nvcc")
    cu_files = sorted(glob.glob(os.path.join(GPU_DIR, "*.cu")))
    if not cu_files:
        print("== nvcc: no .cu sources in this build")
        return 0
    if nvcc is None:
        print("== nvcc not found: CUDA sources not compiled")
        return 0
    sys.path.insert(0, ROOT)                     # the checkout's convkit, not an installed one
    runtime = importlib.import_module("convkit.gpu._runtime")
    for name in family_modules():
        importlib.import_module(name)            # declares its Sources
    demangle = demangler()
    tmp = tempfile.mkdtemp(prefix="convkit-cuda-check-")
    ok, covered = True, set()
    for source in runtime.SOURCES:
        covered.add(source.filename)
        path = os.path.join(tmp, source.filename.replace(".cu", ".instances.cu"))
        with open(path, "w", encoding="utf-8") as f:
            f.write(translation_unit(runtime, source))
        ok &= nvcc_compile(nvcc, path, f"{source.filename} ({len(source.name_expressions())} instantiations)",
                           quiet, demangle)
    for path in cu_files:
        name = os.path.basename(path)
        if name not in covered:
            ok &= nvcc_compile(nvcc, path, f"{name} (no Source names it: compiled as is)", quiet, demangle)
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"== nvcc: {'all CUDA sources compiled' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
