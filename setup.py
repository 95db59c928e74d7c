"""Which packages the distribution holds (everything else is in pyproject.toml).

Every folder of ``scan_server`` is found automatically (a new subpackage is never left out
of a wheel), and the client library in ``client/`` installs as ``scan_client`` (never as
a bare ``client`` module; ``client/pyproject.toml`` also installs it alone)."""

from setuptools import find_namespace_packages, setup

setup(
    packages=[*find_namespace_packages(include=["scan_server", "scan_server.*"], exclude=["*.__pycache__"]),
              "scan_client"],
    package_dir={"scan_client": "client"},
)
