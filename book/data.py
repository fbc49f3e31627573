"""The book's text: the Shakespeare corpus shipped in ``data/``, and any text file a reader brings.

    >>> from book.data import load_corpus
    >>> corpus = load_corpus()
    >>> hamlet = corpus["hamlet"]
    >>> hamlet.speeches()[0]
    Speech(speaker='Ber', text="Who's there?")

The corpus is rebuilt from its public-domain source by ``data/prepare_corpus.py``. Chapter 7's
Python code (:func:`load_code_corpus`) is rebuilt by ``data/prepare_code_corpus.py``.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import lzma
import pathlib
import re

from book.errors import BookError
from book.paths import ROOT

CORPUS_PATH = ROOT / "data" / "shakespeare.json.xz"
CODE_CORPUS_PATH = CORPUS_PATH.with_name("stdlib_code.json.xz")
HELDOUT_EVERY = 10  # code module i (in name order) is held out when i % HELDOUT_EVERY == HELDOUT_EVERY // 2


class DataError(BookError):
    """A text source that cannot be used: missing, empty, not text, or unknown."""


@dataclasses.dataclass(frozen=True)
class Speech:
    speaker: str
    text: str


# A speech opens with the speaker's name alone on a line, after an empty line:
# "Ber." or "KING HENRY." in most plays, "THESEUS" (no full stop) in a few.
_SPEAKER = re.compile(r"^(?:[A-Z][A-Za-z'\-]*\.?)(?: [A-Z][A-Za-z'\-]*\.?)*$")
_NOT_A_SPEAKER = re.compile(r"^(?:ACT|SCENE|Scene|Act|THE END|FINIS)\b")
_STAGE_DIRECTION = re.compile(r"^\s*\[")


@dataclasses.dataclass(frozen=True)
class Work:
    name: str
    title: str
    kind: str  # "play" or "poem"
    text: str
    source: str

    def __len__(self):
        return len(self.text)

    def speeches(self) -> list[Speech]:
        """Each speech of a play as (speaker, text), stage directions removed.

        Speaker names are as printed, without the full stop ("Ham", "KING HENRY").
        Poems have no speakers and give an empty list.
        """
        if self.kind != "play":
            return []
        speeches = []
        for block in self.text.split("\n\n"):
            lines = block.split("\n")
            head = lines[0].strip()
            if len(lines) < 2 or len(head) > 32 or _NOT_A_SPEAKER.match(head) or not _SPEAKER.match(head):
                continue
            if not head.endswith(".") and head != head.upper():
                continue  # "Exeunt" or a title line, not a name
            body = [line.strip() for line in lines[1:] if not _STAGE_DIRECTION.match(line)]
            text = "\n".join(line for line in body if line)
            if text:
                speeches.append(Speech(head.rstrip("."), text))
        return speeches

    def speakers(self) -> dict[str, int]:
        """Speaker name to number of characters spoken, most talkative first."""
        counts: dict[str, int] = {}
        for speech in self.speeches():
            counts[speech.speaker] = counts.get(speech.speaker, 0) + len(speech.text)
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


class Corpus:
    """The complete works, by name, in a fixed order."""

    def __init__(self, works: list[Work], description: str = ""):
        self.works = {work.name: work for work in works}
        self.description = description

    def __len__(self):
        return len(self.works)

    def __iter__(self):
        return iter(self.works.values())

    def __getitem__(self, name: str) -> Work:
        try:
            return self.works[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.works, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known works: {', '.join(self.works)}"
            raise DataError(f"no work named {name!r} in the corpus{hint}") from None

    @property
    def names(self) -> list[str]:
        return list(self.works)

    def plays(self) -> list[Work]:
        return [work for work in self if work.kind == "play"]

    def poems(self) -> list[Work]:
        return [work for work in self if work.kind == "poem"]

    @property
    def text(self) -> str:
        """Every work, one after another, separated by an empty line."""
        return "\n".join(work.text for work in self)

    def split(self, val_fraction: float = 0.1) -> tuple[str, str]:
        """Train and validation text: the last ``val_fraction`` of every work is validation.

        Taking the tail of each work (rather than whole works) puts every play's
        vocabulary and characters in both halves; the cut falls on a line boundary.
        """
        pieces = [split_text(work.text, val_fraction) for work in self]
        return "".join(train for train, _ in pieces), "".join(val for _, val in pieces)


def read_shipped_json(path: str | pathlib.Path, rebuild_command: str) -> dict:
    """One of the repository's compressed data files, or an error that says how to rebuild it."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} is missing; rebuild it with `{rebuild_command}`")
    return json.loads(lzma.decompress(path.read_bytes()))


@functools.lru_cache(maxsize=1)
def load_corpus(path: str | pathlib.Path = CORPUS_PATH) -> Corpus:
    """Load the shipped Shakespeare corpus (42 works, about 5 million characters)."""
    payload = read_shipped_json(path, "python data/prepare_corpus.py")
    works = [Work(w["name"], w["title"], w["kind"], w["text"], w["source"]) for w in payload["works"]]
    return Corpus(works, payload.get("description", ""))


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Split ``text`` into (train, validation), the validation part being the last ``val_fraction``.

    The cut moves forward to the next line break so no line is split in two.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    cut = int(len(text) * (1 - val_fraction))
    newline = text.find("\n", cut)
    if newline != -1 and newline + 1 < len(text):
        cut = newline + 1
    if cut <= 0 or cut >= len(text):
        raise DataError(f"text of {len(text)} characters is too short to split")
    return text[:cut], text[cut:]


def load_text_file(path: str | pathlib.Path) -> str:
    """Read a UTF-8 text file the reader brings, with clear errors for unusable files."""
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    if b"\x00" in raw:
        raise DataError(f"{path}: looks like a binary file (it contains NUL bytes), not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset {error.start})") from None
    return text.lstrip("\ufeff").replace("\r\n", "\n")


# ---------------------------------------------------------------------------------------------
# Python code, for the code-generation application (rebuilt by data/prepare_code_corpus.py)

@dataclasses.dataclass(frozen=True)
class CodeCorpus:
    modules: dict[str, str]
    python: str

    @property
    def heldout_names(self) -> list[str]:
        names = sorted(self.modules)
        return [name for i, name in enumerate(names) if i % HELDOUT_EVERY == HELDOUT_EVERY // 2]

    @property
    def train_names(self) -> list[str]:
        heldout = set(self.heldout_names)
        return [name for name in sorted(self.modules) if name not in heldout]

    def text_of(self, names: list[str]) -> str:
        return "\n".join(self.modules[name] for name in names)

    def split(self) -> tuple[str, str]:
        """(training text, validation text): the training modules, then the held-out ones."""
        return self.text_of(self.train_names), self.text_of(self.heldout_names)


@functools.lru_cache(maxsize=1)
def load_code_corpus(path: str | pathlib.Path = CODE_CORPUS_PATH) -> CodeCorpus:
    """Load the shipped Python code (157 standard-library modules, about 4.4 million characters)."""
    payload = read_shipped_json(path, "python data/prepare_code_corpus.py")
    return CodeCorpus(payload["modules"], payload["python"])
