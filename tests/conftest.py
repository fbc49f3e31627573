import os

# Set before nbval starts any kernel, which inherits the environment.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
