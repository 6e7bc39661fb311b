import subprocess
import sys

from skinml.core.memory import peak_rss_mb

CHILD = "from skinml.core.memory import peak_rss_mb; print(peak_rss_mb())"
# A parent that has touched 600 MB, then starts a small child that reports its own peak.
PARENT = f"""
import subprocess, sys
ballast = bytearray(600 * 1024 * 1024)
ballast[::4096] = b"x" * len(ballast[::4096])
print(subprocess.run([sys.executable, "-c", {CHILD!r}], capture_output=True, text=True, check=True).stdout)
"""


def test_peak_memory_is_the_process_own_not_its_parents():
    child_peak = float(
        subprocess.run([sys.executable, "-c", PARENT], capture_output=True, text=True, check=True).stdout
    )
    assert 1 < child_peak < 300  # ru_maxrss would say ~600 here: the parent's
    assert peak_rss_mb() > 1
