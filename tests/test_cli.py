"""The console command and warm-up, run as a user would run them."""
import json
import subprocess
import sys

import numpy as np

import fastloss as fl


def test_bench_command_prints_the_table():
    out = subprocess.run([sys.executable, "-m", "fastloss.cli", "bench", "--rows", "256", "--classes", "10",
                          "--repeat", "2", "--no-progress"], capture_output=True, text=True, check=True).stdout
    assert "cross_entropy 256x10 float32 forward+grad" in out
    assert "vs numpy" in out and "vs torch" in out


def test_bench_command_json_and_filters():
    out = subprocess.run([sys.executable, "-m", "fastloss.cli", "bench", "--rows", "64", "--classes", "5",
                          "--repeat", "1", "--loss", "focal_loss", "--impl", "numpy", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    assert [r["case"] for r in rows] == ["focal_loss 64x5 float32 forward"]
    assert set(rows[0]["seconds"]) == {"numpy", "fastloss"}
    assert rows[0]["input_bytes"] == 64 * 5 * 4


def test_bench_command_rejects_unknown_loss():
    proc = subprocess.run([sys.executable, "-m", "fastloss.cli", "bench", "--loss", "nope"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "known losses" in proc.stderr


def test_benchmark_baselines_agree_with_fastloss():
    """The NumPy baselines time the same computation as fastloss (else a ratio means nothing)."""
    from fastloss import benchmarks

    inputs = benchmarks._class_inputs(np.random.default_rng(0), 50, 7, np.float64)
    loss, grad = benchmarks.numpy_cross_entropy(inputs["x"], inputs["t"], grad=True)
    ref_loss, ref_grad = fl.cross_entropy(inputs["x"], inputs["t"], grad=True)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(benchmarks.numpy_focal(inputs["x"], inputs["t"]),
                               fl.focal_loss(inputs["x"], inputs["t"]), rtol=1e-12)
    binary = benchmarks._binary_inputs(np.random.default_rng(1), 20, 6, np.float64)
    b_loss, b_grad = benchmarks.numpy_bce_with_logits(binary["x"], binary["y"], grad=True)
    ref_b, ref_bg = fl.binary_cross_entropy_with_logits(binary["x"], binary["y"], grad=True)
    np.testing.assert_allclose(b_loss, ref_b, rtol=1e-12)
    np.testing.assert_allclose(b_grad, ref_bg, rtol=1e-10, atol=1e-15)


def test_warmup_compiles_every_registered_call():
    fl.warmup(dtypes=("float64",))
    from fastloss.classification import softmax_cross_entropy_rows_serial

    assert softmax_cross_entropy_rows_serial.signatures
