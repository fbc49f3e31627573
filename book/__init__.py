"""The code of the book "MetaGPT from scratch".

Each module is built in one chapter. Modules that start with a "Generated from"
line are written from the chapter notebook's exported cells by ``python -m book.tooling.sync``;
edit the notebook, never the generated file.
"""
