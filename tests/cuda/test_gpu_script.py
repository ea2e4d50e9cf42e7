"""bench/gpu.py runs end to end under Numba's CUDA simulator (its checks: the GPU entry
points against the CPU functions on the table's example calls; no timing, no file written)."""
import importlib.util
import inspect
import os
import subprocess
import sys

from numba.core import sigutils

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_script_checks_pass_under_the_simulator():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu.py"), "--simulate", "--quick",
                             "--compile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "## GPU" in result.stdout and "**NO**" not in result.stdout
    assert "| ctc_loss | float64 | example |" in result.stdout  # the entry points are discovered
    assert "| batch_triplet_loss | float64 | example |" in result.stdout


def test_compile_script_reads_one_launch_signature_per_parameter_list():
    """bench/gpu_compile.py (sm_90 PTX, run where NVVM is installed) reads each module's
    PTX_SIGNATURES: one signature or a list of them. Each it reads is a whole signature with
    an argument for each of its kernel's parameters (a string read as a list gave a
    "signature" a character long for every kernel of six modules)."""
    spec = importlib.util.spec_from_file_location("gpu_compile", os.path.join(ROOT, "bench", "gpu_compile.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    seen = set()
    for name, kernel, signature in script.listed():
        arguments, _ = sigutils.normalize_signature(signature)
        assert len(arguments) == len(inspect.signature(kernel.py_func).parameters), (name, kernel.py_func)
        seen.add(name)
    assert seen == set(script.MODULES) - {"fastloss.regression.cuda"}  # its losses are elementwise ones


def test_occupancy_follows_the_sm90_limits():
    """bench/gpu_compile.py's blocks a multiprocessor holds, by hand from sm_90's limits
    (65536 registers given a warp at a time in units of 256, 2048 threads, 228 KiB of
    shared memory less 1 KiB a block): 32 registers x 256 threads hit the thread limit (8
    blocks); 88 registers take 2816 a warp, so 23 warps, 2 blocks of 8; 255 take 8192 a
    warp, one block; 100 KiB of shared memory leave room for 2 blocks."""
    spec = importlib.util.spec_from_file_location("gpu_compile", os.path.join(ROOT, "bench", "gpu_compile.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.blocks_per_sm(32, 2048) == 8
    assert script.blocks_per_sm(64, 2048) == 4
    assert script.blocks_per_sm(88, 2048) == 2
    assert script.blocks_per_sm(255, 0) == 1
    assert script.blocks_per_sm(32, 100 * 1024) == 2
    assert script.blocks_per_sm(32, 0, threads=128) == 16
    report = ("ptxas info    : Function properties for kernel\n"
              "    0 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
              "ptxas info    : Used 46 registers, used 1 barriers, 2048 bytes smem\n")  # ptxas 13.5's wording
    assert script.parse_ptxas(report) == {"registers": 46, "shared": 2048, "stack": 0, "spill_stores": 8,
                                          "spill_loads": 4}
