"""Run the benchmarks and write the ratio table to bench/RESULTS.md.

    python bench/report.py                   # every benchmark
    python bench/report.py -k cross_entropy  # a subset (pytest -k expression)

For each group (a loss, size, dtype and mode) the table gives each implementation's
median and how many times faster fastloss is (their median / fastloss's median), all
from one pytest-benchmark run on the same inputs; "cython" is fastloss on its Cython
kernels, and "cython time" its median over the Numba kernels' (1.00x: as fast); "of copy
bandwidth", where a group has the "copy" reference (x + y on both cores, reading two arrays
and writing one into an existing array), is the copy's median over that of fastloss writing
its gradient into an existing array, "fastloss_out" (100%: at the copy's bandwidth). The medians are kept in
bench/RESULTS.json, so a subset run replaces its own groups and keeps the others;
every row names the run it comes from, and each run's machine, thread count,
versions and command are listed.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def checkout_env(environ=None):
    """``environ`` (the process's environment by default) with this checkout first on
    ``PYTHONPATH``: the environment of a bench script's fresh processes, which import
    fastloss from the checkout whatever the current directory."""
    environ = dict(os.environ if environ is None else environ)
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, environ.get("PYTHONPATH")]))
    return environ


def machine_header():
    import numba
    import numpy

    try:
        import cpuinfo

        cpu = cpuinfo.get_cpu_info().get("brand_raw", platform.processor())
    except ImportError:
        cpu = platform.processor()
    lines = [f"- CPU: {cpu}, {os.cpu_count()} logical cores; numba threads {numba.config.NUMBA_NUM_THREADS}"]
    versions = [f"python {platform.python_version()}", f"numpy {numpy.__version__}", f"numba {numba.__version__}"]
    try:
        import torch

        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    lines.append("- " + ", ".join(versions))
    return lines


def table(store):
    rows = ["| benchmark | numpy | torch | fastloss | cython | vs numpy | vs torch | cython time | of copy bandwidth "
            "| run |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for group in sorted(store["groups"]):
        medians = store["groups"][group]["medians"]
        fast = medians.get("fastloss")

        def cell(impl):
            return f"{medians[impl] * 1e3:.3f} ms" if impl in medians else "-"

        def ratio(impl):
            return f"{medians[impl] / fast:.2f}x" if fast and impl in medians else "-"

        into = medians.get("fastloss_out")
        share = f"{medians['copy'] / into:.0%} ({into * 1e3:.3f} ms)" if into and "copy" in medians else "-"
        rows.append(f"| {group} | {cell('numpy')} | {cell('torch')} | {cell('fastloss')} | {cell('cython')} | "
                    f"{ratio('numpy')} | {ratio('torch')} | {ratio('cython')} | {share} | "
                    f"{store['groups'][group]['run']} |")
    return rows


def merge(store, results, run_id, header, command):
    """Put one pytest-benchmark run's medians into the store, replacing its groups."""
    groups = defaultdict(dict)
    for bench in results["benchmarks"]:
        groups[bench["group"]][bench["extra_info"]["impl"]] = bench["stats"]["median"]
    for group, medians in groups.items():
        store["groups"][group] = {"medians": medians, "run": run_id}
    store["runs"][run_id] = {"header": header, "command": command}
    used = {g["run"] for g in store["groups"].values()}
    store["runs"] = {k: v for k, v in store["runs"].items() if k in used}
    return store


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default=None, help="pytest -k expression selecting benchmarks")
    parser.add_argument("--output", default=os.path.join(HERE, "RESULTS.md"))
    args = parser.parse_args(argv)
    json_path = os.path.join(HERE, "results.json")
    command = [sys.executable, "-m", "pytest", HERE, "-c", os.path.join(HERE, "pytest.ini"), "-q",
               "-p", "no:cacheprovider", "--benchmark-only",
               f"--benchmark-json={json_path}", "--benchmark-min-rounds=5", "--benchmark-warmup=on"]
    if args.k:
        command += ["-k", args.k]
    subprocess.run(command, check=True)
    with open(json_path) as f:
        results = json.load(f)
    store, store_path = load(args.output)
    run_id = results["datetime"][:16].replace("T", " ")
    command = " ".join(["python bench/report.py"] + (["-k", repr(args.k)] if args.k else []))
    merge(store, results, run_id, machine_header(), command)
    write(store, store_path, args.output)


def load(output=os.path.join(HERE, "RESULTS.md")):
    """The store of medians kept next to ``output`` (empty if there is none yet)."""
    store_path = os.path.splitext(output)[0] + ".json"
    store = {"groups": {}, "runs": {}}
    if os.path.exists(store_path):
        with open(store_path) as f:
            store = json.load(f)
    return store, store_path


def command_line(script, argv):
    """How a script of bench/ was run, for its section's record: ``python bench/<script>`` and
    its arguments (``argv``, or the process's own when None)."""
    return " ".join([f"python bench/{script}"] + (argv if argv is not None else sys.argv[1:]))


def add_section(title, description, command, table_rows, output=os.path.join(HERE, "RESULTS.md"), header=None):
    """Put a script's table (e.g. bench/coldstart.py's) into the store as section ``title``
    (replacing an older one) and rewrite ``output``; ``header``: lines saying what it ran
    on, this machine's by default."""
    store, store_path = load(output)
    store.setdefault("sections", {})[title] = {
        "description": description, "command": command, "table": table_rows,
        "run": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "header": header if header is not None else machine_header() + [f"- {platform.platform()}"],
    }
    write(store, store_path, output)


def write(store, store_path, output):
    """Save the store and render it to ``output``: the benchmark table, then the sections
    that scripts measuring whole processes add (:func:`add_section`)."""
    with open(store_path, "w") as f:
        json.dump(store, f, indent=1, sort_keys=True)
    lines = ["# Benchmark results", "",
             "Medians from pytest-benchmark; a ratio is how many times faster fastloss is than that "
             "implementation, both measured in the same run on the same inputs. \"fastloss\" runs the Numba "
             "kernels, \"cython\" the Cython ones; \"cython time\" is the Cython median over the Numba one; "
             "\"of copy bandwidth\" is the median of z = x + y on both cores (two arrays read, one written into "
             "an existing array) over that of fastloss writing its gradient into an existing array (grad_out=, "
             "the same traffic; its median in brackets).", ""]
    for run_id_, run in sorted(store["runs"].items()):
        lines += [f"Run {run_id_}: `{run['command']}`"] + run["header"] + [""]
    lines += table(store)
    for title, section in sorted(store.get("sections", {}).items()):
        lines += ["", f"## {title}", "", section["description"], "",
                  f"Run {section['run']}: `{section['command']}`"] + section["header"] + [""] + section["table"]
    with open(output, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
