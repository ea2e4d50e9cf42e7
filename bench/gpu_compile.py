"""Compile every GPU kernel of fastloss to PTX for sm_90 (H100/H200), on a machine
without a GPU: a check that the kernels are valid for the device compiler, not only for
Numba's CUDA simulator.

Each family's ``cuda.py``, and :mod:`fastloss._core.cuda_elementwise`, lists its kernels
and launch signatures in ``PTX_SIGNATURES``, a module-level list of ``(kernel,
signatures)``; this script compiles each with ``cuda.compile_ptx(..., cc=(9, 0))``.

With ``--resources`` it also assembles each PTX for sm_90 with ``ptxas -v`` and reports
what the kernel takes from a streaming multiprocessor: registers a thread, bytes spilled
to local memory, shared memory a block, and so how many blocks of its launch size fit
on one SM (the occupancy). ``--write`` puts that table into bench/RESULTS.md.

Needs numba-cuda and NVVM, not a driver: in a virtual environment of its own (the
nvcc wheel brings the ptxas that reads this NVVM's PTX; a toolkit's older ptxas refuses
a newer PTX version)::

    python3 -m venv /tmp/venv-nvvm
    /tmp/venv-nvvm/bin/pip install 'numba-cuda[cu13]==0.30.4' 'numpy==2.4.*' 'nvidia-cuda-nvcc==13.5.*'
    PYTHONPATH=. /tmp/venv-nvvm/bin/python bench/gpu_compile.py --resources

Two stand-ins make that work without a driver, here only: numba-cuda compiles the device
functions a kernel calls for the current device's compute capability, which it asks the
driver for (sm_90 is given instead), and :func:`fastloss._core.cuda.load` checks that a
GPU is there (numba-cuda's ``cuda`` module is given instead).
"""
import argparse
import glob
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
from importlib import metadata

CC = (9, 0)
MODULES = ["fastloss._core.cuda_elementwise", "fastloss.classification.cuda", "fastloss.ctc.cuda",
           "fastloss.embedding.cuda", "fastloss.margin.cuda", "fastloss.regression.cuda", "fastloss.triplet.cuda",
           "fastloss.extras.cuda"]
#: What one SM of compute capability 9.0 holds (CUDA C++ Programming Guide, "Technical
#: Specifications per Compute Capability"): 32-bit registers, resident threads and blocks,
#: shared memory (228 KiB, of which the runtime reserves 1 KiB a block), and the
#: registers a warp is given at a time.
SM90 = {"registers": 65536, "threads": 2048, "blocks": 32, "shared": 228 * 1024, "reserved": 1024,
        "register_unit": 256}
#: Threads a block of a kernel launch, at most (:data:`fastloss._core.cuda.BLOCK`).
THREADS = 256


def listed():
    """``(module name, kernel, signature)`` for every kernel and launch signature that the
    GPU modules list in their ``PTX_SIGNATURES``."""
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        for kernel, signatures in getattr(module, "PTX_SIGNATURES", []):
            for signature in signatures if isinstance(signatures, list) else [signatures]:
                yield name, kernel, signature


def find_ptxas():
    """A ptxas for this environment's NVVM: ``$PTXAS``, the nvidia-cuda-nvcc wheel's (beside
    the NVVM wheel, so of its version), else the one on PATH; None if there is none."""
    if os.environ.get("PTXAS"):
        return os.environ["PTXAS"]
    for folder in sys.path:
        found = sorted(glob.glob(os.path.join(folder, "nvidia", "cu*", "bin", "ptxas")))
        if found:
            return found[-1]
    return shutil.which("ptxas")


def resources(ptx, ptxas):
    """What ``ptxas -v`` reports of PTX ``ptx`` assembled for sm_90: a dict of registers (a
    thread), shared (bytes a block), stack, spill_stores and spill_loads (bytes a thread)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        run = subprocess.run([ptxas, f"-arch=sm_{CC[0]}{CC[1]}", "-v", "-o", os.devnull, path], capture_output=True,
                             text=True)
    if run.returncode:
        raise RuntimeError(f"ptxas failed: {(run.stdout + run.stderr).strip()[-500:]}")
    return parse_ptxas(run.stdout + run.stderr)


def parse_ptxas(report):
    """The numbers of ``ptxas -v``'s report on one entry function (see :func:`resources`)."""
    def number(pattern):
        found = re.search(pattern, report)
        return int(found.group(1)) if found else 0

    return {"registers": number(r"Used (\d+) registers"), "shared": number(r"(\d+) bytes smem"),
            "stack": number(r"(\d+) bytes stack frame"), "spill_stores": number(r"(\d+) bytes spill stores"),
            "spill_loads": number(r"(\d+) bytes spill loads")}


def blocks_per_sm(registers, shared, threads=THREADS, sm=SM90):
    """Blocks of ``threads`` threads that fit on one SM at once, each thread using
    ``registers`` registers and each block ``shared`` bytes of shared memory (the CUDA
    occupancy calculator's rules: registers are given a warp at a time, in units)."""
    warps = -(-threads // 32)
    unit = sm["register_unit"]
    per_warp = -(-max(registers, 1) * 32 // unit) * unit
    by_registers = (sm["registers"] // per_warp) // warps
    by_shared = sm["shared"] // (shared + sm["reserved"])
    return min(by_registers, by_shared, sm["threads"] // threads, sm["blocks"])


def label(name, kernel):
    """A kernel's name in the table: its module and qualified name."""
    return f"{name.removeprefix('fastloss.')}.{kernel.py_func.__qualname__.replace('.<locals>', '')}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", action="store_true", help="also assemble each kernel with ptxas -v (sm_90)")
    parser.add_argument("--write", action="store_true", help="with --resources: the table into bench/RESULTS.md")
    options = parser.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        sys.exit("unset NUMBA_ENABLE_CUDASIM: the simulator compiles nothing")
    from numba import cuda
    from numba.cuda import dispatcher

    dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=CC)
    from fastloss._core import cuda as core

    core.load = lambda: cuda
    ptxas = find_ptxas() if options.resources else None
    if options.resources and ptxas is None:
        sys.exit("--resources needs ptxas: pip install nvidia-cuda-nvcc (of NVVM's version), or set PTXAS")
    failures = 0
    rows = []
    for name, kernel, signature in listed():
        start = time.perf_counter()
        where = label(name, kernel)
        try:
            # The kernel's launch bounds (fastloss._core.cuda.resident), which cap its registers.
            bounds = kernel.targetoptions.get("launch_bounds")
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=CC, launch_bounds=bounds)
            used = resources(ptx, ptxas) if ptxas else None
        except Exception as error:  # report every kernel, then fail
            failures += 1
            print(f"FAIL {where} {signature}: {type(error).__name__}: {error}")
            continue
        print(f"ok   {where} ({len(ptx)} bytes of PTX, {time.perf_counter() - start:.1f} s)")
        if used:
            floats = re.search(r"float(32|64)", str(signature))  # the first array's: the input's
            dtype = floats.group(0) if floats else "-"
            blocks = blocks_per_sm(used["registers"], used["shared"])
            rows.append(f"| {where} | {dtype} | "
                        f"{used['registers']} | {used['spill_stores']} / {used['spill_loads']} | {used['stack']} | "
                        f"{used['shared']} | {blocks} | {blocks * THREADS * 100 // SM90['threads']}% |")
    if rows:
        unique = list(dict.fromkeys(rows))  # a kernel compiled for several signatures alike: one row
        table = ["| kernel | dtype | registers | spilled bytes (stores / loads) | stack bytes | shared bytes | "
                 f"blocks of {THREADS} an SM | occupancy |", "|---|---|---|---|---|---|---|---|"] + unique
        print("\n".join(table))
        if options.write:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            import report

            version = subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout.strip().splitlines()
            report.add_section(
                "GPU kernels on sm_90: registers, spills, occupancy (compiled, not run)",
                "Every kernel signature of the GPU modules' PTX_SIGNATURES compiled to PTX by Numba (NVVM) and "
                "assembled for sm_90 by `ptxas -v`, on a machine without a GPU: what each kernel takes from an "
                f"SM, and how many of its blocks of {THREADS} threads fit on one at once (registers, shared "
                "memory and sm_90's limits, as the CUDA occupancy calculator counts them; occupancy is resident "
                "threads over the SM's 2048). Nothing here was run on a GPU.",
                "PYTHONPATH=. python bench/gpu_compile.py --resources --write", table,
                header=[f"- numba-cuda {metadata.version('numba-cuda')}, NVVM {metadata.version('nvidia-nvvm')}",
                        f"- ptxas: {version[-1] if version else ptxas}"])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
