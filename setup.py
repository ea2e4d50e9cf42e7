"""Build script: the pure-Python package, plus the Cython ahead-of-time kernels.

Every ``fastloss/_cython/*.pyx`` becomes an extension module, compiled with OpenMP
where the compiler supports it. With no .pyx sources (or no Cython) the package
installs as pure Python and runs on its Numba kernels alone.
"""
import glob
import os

from setuptools import setup


def cython_extensions():
    sources = sorted(glob.glob(os.path.join("fastloss", "_cython", "*.pyx")))
    if not sources:
        return []
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    openmp = [] if os.environ.get("FASTLOSS_NO_OPENMP") else ["-fopenmp"]
    extensions = [
        Extension(
            source[:-4].replace(os.sep, "."),
            [source],
            include_dirs=[numpy.get_include()],
            extra_compile_args=["-O3"] + openmp,
            extra_link_args=openmp,
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )
        for source in sources
    ]
    return cythonize(extensions, language_level=3)


setup(ext_modules=cython_extensions())
