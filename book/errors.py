"""The base of every error the book's code raises on purpose, with a clear message naming the problem.

Each area has its own subclass (``CheckpointError``, ``ModelError``, ``TaskError`` ...), so a
caller can catch one area's errors, or every one of them with ``BookError``. They are
``ValueError``\\s too: a bad input is a bad value.
"""
import argparse


class BookError(ValueError):
    """A problem the book's code detected and explains (bad data, settings, checkpoints...)."""


class CommandParser(argparse.ArgumentParser):
    """The commands' argument parser: a bad argument is one line, ``error: ... (see PROG --help)``."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
