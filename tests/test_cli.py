"""The console command and warm-up, run as a user would run them."""
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fastloss as fl
from fastloss import benchmarks, cli


def test_bench_command_prints_the_table():
    """An aligned table within 100 columns: each case's label beside its implementations' rows, the
    header's columns over the cells (left edge of the names, right edges of the numbers)."""
    out = subprocess.run([sys.executable, "-m", "fastloss.cli", "bench", "--rows", "256", "--classes", "10",
                          "--repeat", "2", "--no-progress"], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "100"}).stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "Where fastloss is slower than cython" in out and benchmarks.machine().split(",")[0] in out
    header = next(line for line in lines if line.startswith("case "))
    impl_at = header.index("implementation")
    right = {name: header.index(name) + len(name) for name in ("time (ms)", "GB/s", "fastloss speed-up")}
    impls = [i for i in benchmarks.available_impls()]
    rows = [line for line in lines[lines.index(header) + 2:] if line.strip()]
    assert len(rows) == len(impls) * len(benchmarks.CASES)  # every label fits beside its rows
    assert "cross_entropy 256x10 float32 forward+grad" in out
    for line in rows:
        impl = line[impl_at:].split()[0]
        assert impl in impls and line[impl_at - 2:impl_at] == "  "
        assert re.fullmatch(r"\d+\.\d{3}", line[:right["time (ms)"]].split()[-1])
        assert re.fullmatch(r"\d+\.\d{2}", line[:right["GB/s"]].split()[-1])
        if impl != "fastloss":
            assert re.fullmatch(r"[\d.e+-]+x", line[:right["fastloss speed-up"]].split()[-1])
        assert len(line) == (right["GB/s"] if impl == "fastloss" else right["fastloss speed-up"])


def test_table_wraps_long_labels_to_the_width():
    groups = [("binary_cross_entropy_with_logits 65536x1000 float32 forward+grad", [("numpy", "1.000"),
                                                                                   ("fastloss", "12345.678")]),
              ("short", [("numpy", "2.5")])]
    lines = cli._table(("case", "implementation", "time (ms)"), groups, 40, "<>")
    assert max(len(line) for line in lines) <= 40
    first = lines[0].index("implementation") - 2
    label = "".join(line[:first] for line in lines[2:lines.index("")])
    assert "".join(label.split()) == "".join(groups[0][0].split())  # wrapped, all there
    assert [line[first:].split() for line in lines[2:] if line[first:].strip()] == [
        ["numpy", "1.000"], ["fastloss", "12345.678"], ["numpy", "2.5"]]


def test_machine_line_names_cpu_threads_and_versions():
    line = benchmarks.machine()
    for part in (benchmarks.cpu_name(), f"{os.cpu_count()} logical cores", f"fastloss {fl.__version__}",
                 f"numpy {np.__version__}", f"python {platform.python_version()}"):
        assert part in line
    assert re.search(r"numba \S+ \(\d+ threads\)", line) and re.search(r"torch \S+ \(\d+ threads\)", line)


def test_time_calls_gives_every_run():
    calls = []
    times = benchmarks.time_calls(lambda: calls.append(1), repeat=4)
    assert times.shape == (4,) and len(calls) == 5 and (times >= 0).all()  # one untimed warm-up call
    assert benchmarks.time_call(lambda: None, repeat=3) >= 0


def test_version():
    out = subprocess.run([sys.executable, "-m", "fastloss.cli", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"fastloss {fl.__version__}"


def test_help_lists_losses_and_types_options():
    """eval --help: every loss eval streams, each option typed from its defaults; bench --help: its losses."""
    help_text = subprocess.run([sys.executable, "-m", "fastloss.cli", "eval", "--help"], capture_output=True,
                               text=True, check=True, env={**os.environ, "COLUMNS": "100"}).stdout
    flat = " ".join(help_text.split())
    assert "NoneType" not in help_text and "an array option takes a file" not in help_text
    for name in cli._eval_losses():
        assert name in flat
    assert "batch_triplet_loss" not in flat  # not a per-sample loss: eval refuses it, so do its options
    assert re.search(r"--weight NUMBER\|FILE\s+a number, or an array file", help_text)
    assert re.search(r"--swap \{true,false\}\s+of triplet_margin_loss \(false\)", help_text)
    assert re.search(r"--ignore-index INT\s+of cross_entropy \(-100\)", help_text)
    assert "--label-smoothing NUMBER" in help_text and "--strategy" not in help_text
    bench_help = " ".join(subprocess.run([sys.executable, "-m", "fastloss.cli", "bench", "--help"],
                                         capture_output=True, text=True, check=True).stdout.split())
    for case in benchmarks.CASES:
        assert case.loss in bench_help


@pytest.mark.parametrize("argv,option", [
    (["bench", "--rows", "0"], "--rows"), (["bench", "--rows", "x"], "--rows"), (["bench", "--rows", "1.5"], "--rows"),
    (["bench", "--classes", "-1"], "--classes"), (["bench", "--repeat", "0"], "--repeat"),
    (["bench", "--seed", "-1"], "--seed"),
    (["eval", "mse_loss", "--input", "x.npy", "--chunk-rows", "0"], "--chunk-rows"),
    (["diagnose", "train.csv", "--alpha", "x"], "--alpha"),
])
def test_numeric_options_are_checked_in_one_line(capsys, argv, option):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and f"argument {option}:" in err, err


@pytest.mark.parametrize("option, value, expected", [
    ("--ignore-index", "x", "--ignore-index expects an integer, got 'x'"),
    ("--ignore-index", "1.5", "--ignore-index expects an integer, got '1.5'"),
    ("--label-smoothing", "x", "--label-smoothing expects a number, got 'x'"),
    ("--swap", "maybe", "--swap expects true or false, got 'maybe'"),
])
def test_eval_option_of_the_wrong_type_says_what_it_expects(tmp_path, capsys, option, value, expected):
    np.save(tmp_path / "x.npy", np.zeros((3, 4)))
    np.save(tmp_path / "t.npy", np.zeros(3, np.int64))
    x, t = str(tmp_path / "x.npy"), str(tmp_path / "t.npy")
    data = (["triplet_margin_loss", "--input", x, "--arg", f"positive={x}", "--arg", f"negative={x}"]
            if option == "--swap" else ["cross_entropy", "--input", x, "--target", t])
    assert cli.main(["eval", *data, option, value, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.strip().endswith(expected) and len(err.splitlines()) == 1, err


def test_outputs_in_a_missing_folder_fail_before_the_work(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    folder = tmp_path / "nowhere"
    for argv in (["bench", "--rows", "4", "--classes", "2", "--plot", str(folder / "out.png")],
                 ["eval", "mse_loss", "--input", str(tmp_path / "x.npy"), "--target", str(tmp_path / "x.npy"),
                  "--per-sample", str(folder / "out.npy")]):
        proc = subprocess.run([sys.executable, "-m", "fastloss.cli"] + argv, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 1 and proc.stderr.splitlines() == [
            f"fastloss {argv[0]}: error: {argv[-2]} {argv[-1]}: no such folder {folder}"], proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_eval_stopped_by_a_signal_cleans_up(tmp_path, sig):
    """Ctrl-C or SIGTERM during a streamed eval: the partial per-sample file is removed, one line on
    stderr, exit status 128 + the signal number. The run (many small chunks) is signalled once its
    temporary output exists, so it is mid-stream.

    The command starts with SIGINT at its default: a process that ignores SIGINT passes that on
    to its children (a shell does so for background jobs, and Python then leaves Ctrl-C ignored),
    and in a full test run the worker running this file was seen to ignore it: the command then
    ran to its end and exited 0."""
    rng = np.random.default_rng(0)
    n = 400_000
    np.save(tmp_path / "x.npy", rng.standard_normal((n, 4)).astype(np.float32))
    np.save(tmp_path / "t.npy", rng.integers(0, 4, n))
    # A handled signal is reset to its default in the child; an ignored one stays ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "fastloss.cli", "eval", "cross_entropy", "--input", "x.npy",
                                 "--target", "t.npy", "--per-sample", "out.npy", "--chunk-rows", "16", "--no-progress"],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fl.__file__))})
    finally:
        if previous is not None:  # None: a handler set outside Python, which Python cannot put back
            signal.signal(signal.SIGINT, previous)
    tmp = tmp_path / f"out.npy.tmp-{proc.pid}"
    deadline = time.monotonic() + 300
    while not tmp.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert tmp.exists(), "the run ended (or never started) before it could be signalled"
    assert proc.poll() is None, "the run ended before it could be signalled"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig
    assert err.splitlines() == [f"fastloss eval: stopped by {signal.Signals(sig).name}"] and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy", "x.npy"]


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


def test_warmup_compiles_every_registered_call(monkeypatch):
    """warmup() runs the kernels, the vocabulary blocks of linear_cross_entropy included
    (class and probability targets, with and without gradients: seen by a spy on the
    blocked engine, since other tests of this process may have compiled the kernels)."""
    from fastloss import classification

    blocked = []
    engine = classification.linear_softmax_blocks

    def spy(*args):
        blocked.append((args[4].dtype.kind, args[10] is not None))
        return engine(*args)

    monkeypatch.setattr(classification, "linear_softmax_blocks", spy)
    fl.warmup(dtypes=("float64",))
    from fastloss.classification.cpu import softmax_cross_entropy_rows_serial

    assert softmax_cross_entropy_rows_serial.signatures
    assert sorted(set(blocked)) == [("f", False), ("f", True), ("i", False), ("i", True)]
