"""Build hook for the one compiled module (the rest of the metadata is in pyproject.toml).

``sightlines._native._scanner`` is an optional accelerator of the profile
decoder: where no C compiler is available the build of this extension fails
softly and Sightlines uses its pure-Python decoder (same results, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sightlines._native._scanner",
            sources=["sightlines/_native/_scanner.c"],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
