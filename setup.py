"""Build the optional fused CPU kernels (src/digitlab/training/kernels.c) as a plain shared library.

It is loaded with ctypes; when it cannot be compiled (no C compiler), the install still
succeeds and training uses PyTorch's own operators (same results, about 3x slower on CPU).
"""

import platform

from setuptools import Extension, setup

# Portable: built for the architecture's baseline, never for the build machine's own CPU, so a wheel or a venv copied
# to another machine still runs. On x86-64 (GCC, glibc) kernels.c also compiles each kernel for
# AVX-512 and for AVX2 + FMA, and the dynamic loader binds the best copy for the CPU (an ifunc);
# AArch64's baseline already has the 128-bit NEON it uses.
BASELINE = {"x86_64": ["-march=x86-64"], "amd64": ["-march=x86-64"],
            "aarch64": ["-march=armv8-a"], "arm64": ["-march=armv8-a"]}

setup(ext_modules=[Extension(
    "digitlab.training._kernels",
    sources=["src/digitlab/training/kernels.c"],
    extra_compile_args=["-O3", "-fno-math-errno", "-std=gnu11",
                        *BASELINE.get(platform.machine().lower(), [])],
    optional=True,
)])
