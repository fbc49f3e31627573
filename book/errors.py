"""The base of every error the book's code raises on purpose, with a clear message naming the problem.

Each area has its own subclass (``CheckpointError``, ``ModelError``, ``TaskError`` ...), so a
caller can catch one area's errors, or every one of them with ``BookError``. They are
``ValueError``\\s too: a bad input is a bad value.
"""


class BookError(ValueError):
    """A problem the book's code detected and explains (bad data, settings, checkpoints...)."""
