"""Automatic checks for the exercises at the end of each chapter (every chapter imports it).

A check cell calls :func:`check` with the exercise's name and a function that
asserts what a correct answer does. The student sees a verdict, not a traceback.
"""
from __future__ import annotations

from typing import Callable

PASSED = "\u2713"  # check mark
FAILED = "\u2717"  # ballot x


def check(name: str, test: Callable[[], None]) -> None:
    """Run ``test`` and print whether exercise ``name`` is solved, and if not, why."""
    try:
        test()
    except NotImplementedError:  # the stub is still there
        print(f"{FAILED} {name}: not attempted yet. Write your answer in the exercise cell, run it, "
              "then run this check.")
    except NameError as error:  # the answer was never run, or it uses a name that does not exist
        print(f"{FAILED} {name}: {error}. If that is the name the exercise asks for, run your answer's cell "
              f"first; otherwise check its spelling in your code.")
    except AssertionError as error:
        print(f"{FAILED} {name}: {error or 'the answer does not do what the exercise asks'}")
    except Exception as error:  # the student's code crashed: say where, briefly
        print(f"{FAILED} {name}: your code raised {type(error).__name__}: {error}")
    else:
        print(f"{PASSED} {name}: passed")
