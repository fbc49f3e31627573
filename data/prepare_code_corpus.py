"""Rebuild ``data/stdlib_code.json.xz``: Python source code for the code-generation application.

The text is the top-level modules of the running Python's standard library (``Lib/*.py``;
no packages, no tests), the files written in ASCII only, so that a character vocabulary of
about a hundred symbols covers all of it. The standard library is distributed under the
Python Software Foundation License; the file records the Python version it came from, so
the book's numbers do not change when a reader's Python does.

    python data/prepare_code_corpus.py
"""
import json
import lzma
import pathlib
import platform
import sysconfig

OUT = pathlib.Path(__file__).with_name("stdlib_code.json.xz")
# Not code a reader would want completed: an easter egg and a frozen-module test fixture.
SKIP = {"antigravity.py", "this.py", "__phello__.foo.py"}


def read_modules(library: pathlib.Path) -> dict[str, str]:
    modules = {}
    for path in sorted(library.glob("*.py")):
        raw = path.read_bytes()
        if path.name in SKIP or not raw.isascii():
            continue
        text = raw.decode("ascii").replace("\r\n", "\n").expandtabs(8)
        modules[path.stem] = text.rstrip("\n") + "\n"
    return modules


def main() -> None:
    library = pathlib.Path(sysconfig.get_paths()["stdlib"])
    modules = read_modules(library)
    record = {
        "source": f"the top-level ASCII modules of the Python {platform.python_version()} standard library",
        "license": "Python Software Foundation License Version 2",
        "python": platform.python_version(),
        "modules": modules,
    }
    with lzma.open(OUT, "wt", encoding="utf-8", preset=9) as file:
        json.dump(record, file, ensure_ascii=True, indent=0)
    size = sum(len(text) for text in modules.values())
    print(f"wrote {OUT}: {len(modules)} modules, {size:,} characters, {OUT.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
