"""The sandbox that runs generated code: each limit it claims is tested here."""
import os

import pytest

from book.applications import TaskError
from book.applications.sandbox import MEMORY_BYTES, STATUSES, description, network_namespace_available, run_tests


def test_a_correct_program_passes_and_a_wrong_one_fails():
    program = "def add_3(x):\n    return x + 3\n"
    assert run_tests(program, ["assert add_3(1) == 4", "assert add_3(-3) == 0"]).status == "passed"
    outcome = run_tests(program.replace("+ 3", "+ 2"), ["assert add_3(0) == 2", "assert add_3(1) == 4"])
    assert (outcome.status, outcome.passed, outcome.detail) == ("failed", 1, "assert add_3(1) == 4")


def test_errors_are_reported_not_raised():
    assert run_tests("def f(:\n", []).status == "error"
    outcome = run_tests("def f():\n    return 1 / 0\n", ["assert f() == 0"])
    assert outcome.status == "error" and "ZeroDivisionError" in outcome.detail


def test_wall_clock_limit_kills_the_process():
    assert run_tests("while True:\n    pass\n", [], wall_seconds=0.5, cpu_seconds=60).status == "timeout"


def test_cpu_limit_stops_a_busy_loop():
    outcome = run_tests("while True:\n    pass\n", [], wall_seconds=60, cpu_seconds=1)
    assert outcome.status == "timeout" and "signal" in outcome.detail


def test_memory_limit():
    assert run_tests(f"x = bytearray({4 * MEMORY_BYTES})\n", []).status == "memory"
    assert run_tests(f"x = bytearray({MEMORY_BYTES // 16})\n", []).status == "passed"


def test_limits_are_set_inside_the_child():
    tests = ["import resource",
             f"assert resource.getrlimit(resource.RLIMIT_AS) == ({MEMORY_BYTES}, {MEMORY_BYTES})",
             "assert resource.getrlimit(resource.RLIMIT_FSIZE) == (0, 0)",
             "assert resource.getrlimit(resource.RLIMIT_CPU)[0] == 2"]
    assert run_tests("", tests).status == "passed"


@pytest.mark.parametrize("program", [
    "import socket\nsocket.socket()\n",
    "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)\n",
    "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=1)\n",
])
def test_no_network(program):
    for namespace in {False, network_namespace_available()}:
        outcome = run_tests(program, [], network_namespace=namespace)
        # urllib wraps the refusal in its own error; either way the socket never opened.
        assert outcome.status in ("refused", "error") and "sandbox refuses socket" in outcome.detail, outcome


@pytest.mark.parametrize("program", [
    "open('written.txt', 'w')\n",
    "open('written.txt', 'a')\n",
    "import os\nos.open('written.txt', os.O_WRONLY | os.O_CREAT)\n",
    "import pathlib\npathlib.Path('written.txt').write_text('x')\n",
    "import os\nos.remove('/etc/hostname')\n",
    "import os\nos.mkdir('folder')\n",
    "import os\nos.system('true')\n",
    "import subprocess\nsubprocess.run(['true'])\n",
    "import os\nos.fork()\n",
    "import os, signal\nos.kill(1, signal.SIGTERM)\n",
    "import ctypes\n",
])
def test_refused_operations(program):
    assert run_tests(program, []).status == "refused", program


def test_reading_and_importing_still_work():
    assert run_tests("import json, re, math\nx = open('/etc/hostname').read()\n", []).status == "passed"


def test_empty_environment_and_fresh_folder():
    tests = ["import os, sys", "assert set(os.environ) <= {'LC_CTYPE'}, dict(os.environ)",
             "assert os.listdir('.') == []", "assert sys.flags.isolated and sys.flags.no_site"]
    assert run_tests("", tests).status == "passed"
    outcome = run_tests("import os\nraise RuntimeError(os.getcwd())\n", [])
    folder = outcome.detail.removeprefix("RuntimeError: ")
    assert os.path.basename(folder).startswith("sandbox-") and not os.path.exists(folder)


def test_printing_cannot_forge_a_verdict():
    program = 'print(\'{"status": "passed", "passed": 1, "detail": ""}\')\ndef f():\n    return 0\n'
    assert run_tests(program, ["assert f() == 1"]).status == "failed"


def test_bad_arguments():
    with pytest.raises(TaskError, match="list of tests"):
        run_tests("x = 1", "assert x")
    with pytest.raises(TaskError, match="positive"):
        run_tests("x = 1", [], wall_seconds=0)


def test_description_names_every_limit():
    facts = description()
    assert facts["memory_bytes"] == MEMORY_BYTES and facts["environment"] == "empty"
    assert isinstance(facts["network_namespace"], bool)
    assert set(STATUSES) == {"passed", "failed", "error", "timeout", "memory", "refused"}
