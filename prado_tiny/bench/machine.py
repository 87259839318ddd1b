"""One line that says which machine a figure was measured on, printed beside every benchmark."""
import os
import platform


def describe_machine() -> str:
    """`host arch CPU model; N cores; Python X; numpy Y`."""
    import numpy as np

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass  # not Linux: platform.processor() is the best there is
    return (f"{platform.node()} {platform.machine()} {cpu}; {os.cpu_count()} cores; "
            f"Python {platform.python_version()}; numpy {np.__version__}")
