"""The experiments: every command that writes the shipped results under ``checkpoints/``.

Each module is a command, ``python -m book.experiments.<name>``:

* ``sinusoid`` (Chapter 5): MAML's sinusoid benchmark; evaluates the shipped weights, and
  retrains them with ``--train``;
* ``metagpt`` (Chapter 6): MetaGPT against its baselines on held-out tasks; likewise;
* ``translation_adaptation`` and ``code_adaptation`` (Chapter 7): few-shot adaptation of the
  shipped models to number-word translation and to held-out Python modules, writing results
  only (the models they adapt are thrown away).

:mod:`book.experiments.results` writes a result file with the command that reproduces it.
"""
