"""Running code a model wrote, and its unit tests, in a separate, limited Python process (Chapter 8).

Generated code is never run in the caller's process: :func:`run_tests` starts a fresh
interpreter for each program and reads back one line saying how its tests went. What holds
the child in, in order of strength:

- **its own process, killed at a wall-clock limit** (the whole process group, with SIGKILL);
- **operating-system limits** set with ``resource.setrlimit`` before the program is read:
  address space (``RLIMIT_AS``, so a huge allocation raises ``MemoryError``), CPU seconds
  (``RLIMIT_CPU``), no file may be written to (``RLIMIT_FSIZE`` 0) and no core dumps;
- **no network**: where the system allows it (root, or user namespaces), the child runs in a
  new, empty network namespace (``unshare --net``: not even a working loopback); everywhere, the
  audit hook below refuses every ``socket`` event;
- **an audit hook** (``sys.addaudithook``, installed before the program is compiled) that
  refuses sockets, starting processes (``subprocess``, ``os.system``, ``exec``, ``spawn``,
  ``fork``), signals to other processes, opening a file for writing, creating, removing or
  renaming files and folders, and ``ctypes`` (which could reach around the hook);
- **a bare interpreter**: an empty environment, isolated mode (``-I``: no ``PYTHON*`` variables,
  no user site, the script's folder not on the path), no ``site`` (``-S``), and a fresh empty
  working folder that is deleted afterwards.

Python's documentation warns that audit hooks are not a security boundary against code
written to escape them; the boundaries that hold against such code are the process, its
limits and the network namespace. The hook is there to stop the accidents a small model makes.
The same applies to the score: code in the child could print a forged verdict, so this runs
honest mistakes safely; it does not grade an adversary.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from book.tasks import TaskError

WALL_SECONDS = 3.0
MEMORY_BYTES = 256 * 2**20
CPU_SECONDS = 2
STATUSES = ("passed", "failed", "error", "timeout", "memory", "refused")

# The child: it limits itself, reads the program and its tests from standard input, installs the
# hook, then runs the program and each test, and writes one JSON line on the standard output it
# kept before the program ran (the program's own printing goes nowhere).
_CHILD = r'''
import io, json, os, resource, sys
limits = json.loads(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limits["memory"], limits["memory"]))
resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"]))
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
job = json.loads(sys.stdin.read())
verdict_fd = os.dup(1)
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
os.dup2(devnull, 2)
sys.stdout = sys.stderr = io.StringIO()
WRITE = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
REFUSED = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork",
           "os.forkpty", "os.kill", "os.killpg", "os.remove", "os.rename", "os.rmdir", "os.mkdir",
           "os.symlink", "os.link", "os.truncate", "os.chmod", "os.chown", "os.utime", "shutil.",
           "ctypes.", "pty.", "os.startfile", "_posixsubprocess.")
class Refused(PermissionError):
    pass
def hook(event, args):
    if event.startswith(REFUSED):
        raise Refused(f"the sandbox refuses {event}")
    if event == "open":
        mode, flags = args[1], args[2]
        if (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & WRITE):
            raise Refused(f"the sandbox refuses to open {args[0]!r} for writing")
sys.addaudithook(hook)
def verdict(status, passed, detail=""):
    os.write(verdict_fd, (json.dumps({"status": status, "passed": passed, "detail": detail[:200]}) + "\n").encode())
    os._exit(0)
def failure(error, passed):
    if isinstance(error, Refused):
        verdict("refused", passed, str(error))
    if isinstance(error, MemoryError):
        verdict("memory", passed, "MemoryError")
    verdict("error", passed, f"{type(error).__name__}: {error}")
namespace = {"__name__": "candidate"}
try:
    exec(compile(job["program"], "<program>", "exec"), namespace)
except BaseException as error:
    failure(error, 0)
for number, test in enumerate(job["tests"]):
    try:
        exec(compile(test, "<test>", "exec"), namespace)
    except AssertionError:
        verdict("failed", number, test)
    except BaseException as error:
        failure(error, number)
verdict("passed", len(job["tests"]))
'''


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a program's tests went: ``status`` is one of :data:`STATUSES`; ``passed`` tests ran before it stopped."""

    status: str
    passed: int
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "passed"


@functools.lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether ``unshare --net`` can start a process in a new network namespace here."""
    if shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "--net", "true"], env={}, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def description(network_namespace: bool | None = None) -> dict:
    """What the sandbox enforces on this machine (for a results file)."""
    namespace = network_namespace_available() if network_namespace is None else network_namespace
    return {"wall_seconds": WALL_SECONDS, "memory_bytes": MEMORY_BYTES, "cpu_seconds": CPU_SECONDS,
            "file_size_bytes": 0, "environment": "empty", "interpreter": "python -I -S",
            "network_namespace": namespace,
            "audit_hook_refuses": "sockets, processes, signals, writing or changing files, ctypes"}


def run_tests(program: str, tests: list[str], *, wall_seconds: float = WALL_SECONDS, memory_bytes: int = MEMORY_BYTES,
              cpu_seconds: int = CPU_SECONDS, network_namespace: bool | None = None) -> Outcome:
    """Run ``program`` and then each test (one assert statement each) in a new limited process.

    ``network_namespace`` None uses a new network namespace where the system allows it.
    """
    if not isinstance(program, str) or not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
        raise TaskError("run_tests needs a program (str) and a list of tests (str)")
    if not (wall_seconds > 0 and memory_bytes > 0 and cpu_seconds > 0):
        raise TaskError(f"the limits must be positive, got {wall_seconds} s, {memory_bytes} bytes, {cpu_seconds} s CPU")
    limits = json.dumps({"memory": int(memory_bytes), "cpu": int(cpu_seconds)})
    command = [sys.executable, "-I", "-S", "-c", _CHILD, limits]
    if network_namespace_available() if network_namespace is None else network_namespace:
        command = ["unshare", "--net", "--"] + command
    folder = tempfile.mkdtemp(prefix="sandbox-")
    try:
        child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 env={}, cwd=folder, start_new_session=True)
        try:
            out, _ = child.communicate(json.dumps({"program": program, "tests": tests}).encode(), timeout=wall_seconds)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            return Outcome("timeout", 0, f"killed after {wall_seconds} s")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if child.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return Outcome("timeout", 0, f"stopped by signal {-child.returncode} (CPU limit)")
    try:
        line = json.loads(out.decode().strip().splitlines()[-1])
        return Outcome(line["status"], int(line["passed"]), line["detail"])
    except (IndexError, ValueError, KeyError, UnicodeDecodeError):
        return Outcome("error", 0, f"the process ended with status {child.returncode} and no verdict")
