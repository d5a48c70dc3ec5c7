"""flowml's metadata is in pyproject.toml; this file only says which packages the wheel holds,
because one of them lives outside flowml/: the example graphs in graphs/ ship as the package
``flowml.examples`` (so a clone keeps ``flowml run graphs/demo.yaml`` and a wheel has them too),
every folder below it (graphs/kernels: the CUDA C the kernel graphs read) as a data package."""

from setuptools import find_namespace_packages, setup

DATA = ["*.yaml", "*.yml", "*.md", "*.cu", "*.cuh", "*.json", "*.txt", "*.py", "*.png", "*.jpg"]
examples = ["flowml.examples"] + [f"flowml.examples.{p}" for p in find_namespace_packages(where="graphs")
                                  if "__pycache__" not in p]

setup(
    packages=find_namespace_packages(include=["flowml", "flowml.*"], exclude=["*__pycache__*"]) + examples,
    package_dir={"flowml.examples": "graphs"},
    package_data={p: DATA for p in examples},
)
