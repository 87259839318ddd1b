"""Tests for prado_tiny.bench.machine."""
import os
import platform

from prado_tiny.bench.machine import describe_machine


def test_describe_machine_names_cores_and_python():
    line = describe_machine()
    assert f"{os.cpu_count()} cores" in line
    assert f"Python {platform.python_version()}" in line
