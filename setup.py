"""Build script: the pure-Python package, plus the Cython ahead-of-time kernels.

Every ``fastloss/_cython/*.pyx`` becomes an extension module. On gcc and clang they
are compiled with ``-O3 -fno-math-errno -fno-trapping-math`` (never ``-ffast-math``:
fastloss relies on inf and NaN), with gcc's limit of run-time alias checks raised so
that the elementwise loops vectorise, and with OpenMP (``-fopenmp``) when the compiler
accepts it, else with ``-fopenmp-simd`` alone (serial kernels, still vectorised);
``FASTLOSS_NO_OPENMP=1`` forces the latter. The extensions are optional: without
Cython or a working C compiler the package installs as pure Python and runs on its
Numba kernels alone.
"""
import glob
import os
import sys
import tempfile

from setuptools import setup
from setuptools.command.build_ext import build_ext

CYTHON_DIR = os.path.join("fastloss", "_cython")
ALIAS_CHECKS = "--param=vect-max-version-for-alias-checks=24"
OPENMP_PROBE = "#include <omp.h>\nint main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }\n"


def _accepts(compiler, flags, program=OPENMP_PROBE):
    """Whether ``compiler`` compiles and links ``program`` (by default an OpenMP one) with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write(program)
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, os.path.join(tmp, "probe"), extra_postargs=flags)
        except Exception:  # any compile or link error: the flags are not supported
            return False
    return True


class BuildExt(build_ext):
    """build_ext choosing the compiler flags that the compiler supports."""

    def _contraction(self, extension):
        """``-ffp-contract=off`` for the elementwise kernels: as the Numba driver (no
        contraction), ``e - y x`` stays a product then a difference; a fused multiply-add
        there gives inf for torch's inf - inf = NaN, and a nonzero residue for its 1 - 1 = 0."""
        if self.compiler.compiler_type == "unix" and extension.name.endswith(".elementwise"):
            return ["-ffp-contract=off"]
        return []

    def build_extensions(self):
        compile_args, link_args = [], []
        if self.compiler.compiler_type == "unix":
            # gcc's default contraction into fused multiply-adds stays (in the AVX2 and
            # AVX-512 clones): the Numba kernels contract too (fastmath "contract"), and
            # without it the softmax kernels run 20-35% slower (their exp polynomial).
            compile_args = ["-O3", "-fno-math-errno", "-fno-trapping-math"]
            # gcc vectorises a loop whose pointers may overlap behind a run-time check per
            # pair (a store and another access); the elementwise loop with both gradients
            # has 3 outputs and 5 inputs, 18 pairs, over gcc's default limit of 10.
            if _accepts(self.compiler, [ALIAS_CHECKS], "int main(void) { return 0; }\n"):
                compile_args.append(ALIAS_CHECKS)
            if not os.environ.get("FASTLOSS_NO_OPENMP") and _accepts(self.compiler, ["-fopenmp"]):
                compile_args.append("-fopenmp")
                link_args.append("-fopenmp")
            else:
                compile_args.append("-fopenmp-simd")
                print("fastloss: building the Cython kernels without OpenMP (serial)", file=sys.stderr)
        for extension in self.extensions:
            extension.extra_compile_args = compile_args + self._contraction(extension)
            extension.extra_link_args = link_args
        super().build_extensions()


def cython_extensions():
    sources = sorted(glob.glob(os.path.join(CYTHON_DIR, "*.pyx")))
    if not sources:
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as error:
        print(f"fastloss: not building the Cython kernels ({error}); Numba runs every loss", file=sys.stderr)
        return []
    from setuptools import Extension

    extensions = [
        Extension(
            source[:-4].replace(os.sep, "."),
            [source],
            include_dirs=[CYTHON_DIR],  # fastmath.h; typed memoryviews need no NumPy headers
            optional=True,  # a failed compile leaves the Numba backend, with a warning
        )
        for source in sources
    ]
    return cythonize(extensions, language_level=3)


setup(ext_modules=cython_extensions(), cmdclass={"build_ext": BuildExt})
