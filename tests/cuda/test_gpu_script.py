"""bench/gpu.py runs end to end under Numba's CUDA simulator (its checks: the GPU entry
points against the CPU functions on the table's example calls; no timing, no file written)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gpu_script_checks_pass_under_the_simulator():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu.py"), "--simulate", "--quick",
                             "--compile"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "## GPU" in result.stdout and "**NO**" not in result.stdout
    assert "| ctc_loss | float64 | example |" in result.stdout  # the entry points are discovered
    assert "| batch_triplet_loss | float64 | example |" in result.stdout
