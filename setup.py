"""Build the optional fused CPU kernels (src/digitlab/training/kernels.c) as a plain shared library.

It is loaded with ctypes; when it cannot be compiled (no C compiler), the install still
succeeds and training uses PyTorch's own operators (same results, about 3x slower on CPU).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "digitlab.training._kernels",
    sources=["src/digitlab/training/kernels.c"],
    # built on the machine that runs it: use all of its SIMD width
    extra_compile_args=["-O3", "-march=native", "-fno-math-errno", "-std=gnu11"],
    optional=True,
)])
