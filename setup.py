"""Packaging for tb_stagnation: a TensorBoard plugin and Keras callback."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="tb-stagnation",
    version="0.1.0",
    description=(
        "Find out why a Keras model's loss and accuracy stay the same every epoch: "
        "a callback, a TensorBoard tab and a CLI."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["tb_stagnation", "tb_stagnation.*"]),
    package_data={
        "tb_stagnation": [
            "static/*",
            "summary/FORMAT.md",
            "plugin/http_api.md",
            # The routes' JSON contract, which the tab's types are checked against.
            "plugin/http_api.schema.json",
            "py.typed",
        ],
    },
    # TensorFlow is deliberately not a hard requirement: tensorflow,
    # tensorflow-cpu and tf-nightly all provide `import tensorflow`, and naming
    # one here would make pip install a second 570 MB copy beside the user's.
    # The TensorBoard tab and the CLI never need it; the callback checks for it.
    install_requires=[
        "tensorboard>=2.16",
        "numpy>=1.23",
        "werkzeug>=2.2",
    ],
    extras_require={
        # For a machine with no TensorFlow yet: `pip install tb-stagnation[cpu]`.
        # The oldest pair tested (.ci/old_versions): TensorFlow 2.16 with
        # Keras 3.5; pip may pick an older Keras 3 for TensorFlow 2.16 alone.
        "cpu": ["tensorflow-cpu>=2.16", "keras>=3.5"],
        "tensorflow": ["tensorflow>=2.16", "keras>=3.5"],
        # The demo trains on data that ships inside scikit-learn (digits,
        # breast cancer): real data with no download at run time.
        "demo": ["scikit-learn>=1.3"],
        "test": [
            "tensorflow-cpu>=2.16",
            "keras>=3.5",
            "scikit-learn>=1.3",
            "pytest>=8",
            "hypothesis>=6.100",
            "ruff>=0.6",
            # Type-checks tb_stagnation/ in CI (the public API's hints are a promise).
            "mypy>=1.10",
            # Drives Debian's chromium (never downloads a browser of its own).
            "playwright>=1.40",
        ],
    },
    entry_points={
        "tensorboard_plugins": [
            "stagnation = tb_stagnation.plugin.loader:StagnationLoader",
        ],
        "console_scripts": [
            "tb-stagnation = tb_stagnation.cli:main",
        ],
    },
    classifiers=[
        "Framework :: TensorFlow",
        "Intended Audience :: Science/Research",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
