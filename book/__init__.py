"""The code of the book "MetaGPT from scratch", by role.

* The library the chapters build, one idea per module: ``tokenize`` and ``embeddings``
  (Chapter 1), ``attention`` (Chapter 2), ``loss`` and ``training`` (Chapter 3), ``model``,
  ``generate`` and ``checkpoint`` (Chapter 4), ``maml`` (Chapter 5), ``tasks`` (Chapter 6),
  ``distributed`` (appendix "Scaling out"), with ``data`` (the corpora), ``exercise`` (the
  exercise checks) and small helpers (``errors``, ``paths``, ``stats``, ``presets``). The
  commands ``python -m book.train``, ``book.generate`` and ``book.hf`` are thin wrappers here.
* :mod:`book.viz`: the attention view (Chapter 2 and its appendix).
* :mod:`book.applications`: one small module per application of Chapter 8, and the measures of Chapter 9.
* :mod:`book.experiments`: every command that writes the shipped results under ``checkpoints/``.
* :mod:`book.tooling`: the book's own machinery (notebook-to-module sync, the Colab cell, the
  student edition, the Sphinx extensions), not part of what the chapters teach.

Modules whose first line says "Generated from" are written from a chapter's exported cells by
``python -m book.tooling.sync``: edit the notebook, never the generated file. The other modules
are written by hand, and each opens with the chapter that derives or uses it.
"""
