"""Build hook for the compiled modules (the rest of the metadata is in pyproject.toml).

``sightlines._native._scanner`` (the profile decoder) and
``sightlines._native._features`` (the window aggregates) are optional
accelerators: where no C compiler is available their build fails softly and
Sightlines uses the pure-Python reference (same results, slower).
"""

from setuptools import Extension, setup

#: -ffp-contract=off: no fused multiply-adds, so the compiled arithmetic rounds exactly as numpy's does
_ARGS = ["-O3", "-std=c11", "-Wall", "-Wno-unused-parameter", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension("sightlines._native._scanner", sources=["sightlines/_native/_scanner.c"],
                  extra_compile_args=_ARGS, optional=True),
        Extension("sightlines._native._features", sources=["sightlines/_native/_features.c"],
                  extra_compile_args=_ARGS, optional=True),
    ]
)
