"""Execute one notebook in a fresh kernel and report its wall time and the kernel's peak memory.

Run as a separate process so that ``RUSAGE_CHILDREN`` counts only this notebook's kernel:

    python benchmarks/notebook_timing.py chapters/01_text_to_vectors.ipynb
"""
import json
import os
import pathlib
import resource
import sys
import time

import nbformat
from nbclient import NotebookClient


def main(path):
    path = pathlib.Path(path)
    notebook = nbformat.read(path, as_version=4)
    os.environ.setdefault("TQDM_DISABLE", "1")
    start = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    # ru_maxrss is in kilobytes on Linux: the largest resident set of any finished child (the kernel).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"notebook": path.stem, "seconds": round(seconds, 2), "peak_mb": round(peak_mb, 1)}))


if __name__ == "__main__":
    main(sys.argv[1])
