"""Experiments that reproduce published results with the book's code.

Each module is a command, ``python -m book.experiments.<name>``, that evaluates the shipped
checkpoint by default and retrains it with ``--train``.
"""
