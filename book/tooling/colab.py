"""The first code cell of every notebook: on Google Colab it fetches the book, elsewhere it does nothing.

A reader who opens a chapter from the book's Colab button gets the notebook alone; the cell
clones the repository (code, data, checkpoints), installs the ``book`` package and moves into
``chapters/`` so that every path the chapter uses resolves as it does locally. Colab already
has PyTorch, NumPy, Matplotlib, tqdm, safetensors, tokenizers, transformers and ipywidgets.

    python -m book.tooling.colab           # insert or refresh the cell in every notebook of chapters/
    python -m book.tooling.colab --check   # exit 1 if a notebook lacks the current cell
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

from book.paths import ROOT

CHAPTERS = ROOT / "chapters"
# The same address is `repository.url` in _config.yml (tests/test_colab.py keeps them equal).
REPOSITORY_URL = "https://github.com/metagpt-from-scratch/metagpt-from-scratch"
CLONE_DIR = "/content/metagpt-from-scratch"
TAGS = ["colab-setup", "remove-cell"]

SETUP_SOURCE = f"""\
# On Google Colab: fetch the book's code, data and checkpoints. Anywhere else: nothing.
import os
import subprocess
import sys

if "google.colab" in sys.modules:
    BOOK_CLONE = {CLONE_DIR!r}
    if not os.path.isdir(BOOK_CLONE):
        url = {REPOSITORY_URL!r}
        subprocess.run(["git", "clone", "--depth=1", url, BOOK_CLONE], check=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "-e", BOOK_CLONE]
        subprocess.run(pip, check=True)
    sys.path.insert(0, BOOK_CLONE)
    os.chdir(BOOK_CLONE + "/chapters")"""


def is_setup_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and TAGS[0] in cell["metadata"].get("tags", [])


def setup_cell(execution_count: int | None) -> dict:
    return {"cell_type": "code", "execution_count": execution_count, "id": "colab-setup",
            "metadata": {"tags": list(TAGS)}, "outputs": [], "source": SETUP_SOURCE.splitlines(keepends=True)}


def with_setup_cell(notebook: dict) -> dict:
    """The notebook with the current setup cell right after its title.

    A new cell counts as executed first: the execution counts after it move up by one,
    so the notebook still reads as run top to bottom, which is what running it would give.
    """
    cells = notebook["cells"]
    existing = [i for i, cell in enumerate(cells) if is_setup_cell(cell)]
    if existing:
        cell = cells[existing[0]]
        cell["source"] = SETUP_SOURCE.splitlines(keepends=True)
        cell["metadata"]["tags"] = list(TAGS)
        return notebook
    executed = any(cell.get("execution_count") for cell in cells if cell["cell_type"] == "code")
    for cell in cells:
        if cell["cell_type"] == "code" and cell.get("execution_count"):
            cell["execution_count"] += 1
            for output in cell["outputs"]:
                if output.get("execution_count"):
                    output["execution_count"] += 1
    title_first = cells and cells[0]["cell_type"] == "markdown"
    cells.insert(1 if title_first else 0, setup_cell(1 if executed else None))
    return notebook


def notebooks(chapters: pathlib.Path = CHAPTERS) -> list[pathlib.Path]:
    return sorted(chapters.glob("*.ipynb"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m book.tooling.colab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report notebooks without the current cell")
    args = parser.parse_args(argv)
    outdated = []
    for path in notebooks():
        text = path.read_text(encoding="utf-8")
        updated = json.dumps(with_setup_cell(json.loads(text)), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        if updated != text:
            outdated.append(path)
            if not args.check:
                path.write_text(updated, encoding="utf-8")
    for path in outdated:
        print(f"{path.relative_to(ROOT)}: {'lacks the current Colab setup cell' if args.check else 'updated'}")
    return 1 if args.check and outdated else 0


if __name__ == "__main__":
    sys.exit(main())
