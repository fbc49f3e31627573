"""The book's text: the Shakespeare corpus shipped in ``data/``, and any text file a reader brings.

    >>> from book.data import load_corpus
    >>> corpus = load_corpus()
    >>> hamlet = corpus["hamlet"]
    >>> hamlet.speeches()[0]
    Speech(speaker='Ber', text="Who's there?")

The corpus is rebuilt from its public-domain source by ``data/prepare_corpus.py``. Chapter 8's
Python code (:func:`load_code_corpus`) is rebuilt by ``data/prepare_code_corpus.py``.
"""
from __future__ import annotations

import codecs
import dataclasses
import difflib
import functools
import json
import lzma
import pathlib
import re
import tempfile
from collections.abc import Iterator

import numpy as np

from book.errors import BookError
from book.paths import ROOT
from book.tokenize import CharTokenizer, UnknownCharacterError

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
    return "".join(iter_text_file(path))


READ_BYTES = 1 << 23  # a text file is read 8 MiB at a time


def iter_text_file(path: str | pathlib.Path, read_bytes: int = READ_BYTES) -> Iterator[str]:
    """The text of a UTF-8 file, piece by piece, so that a file of gigabytes is never held whole.

    The pieces joined are the file's text with a leading byte-order mark removed and Windows line
    ends (``\\r\\n``) made ``\\n``. Unusable files raise :class:`DataError`: missing, not a regular
    file, empty (or only white space), binary (NUL bytes) or not UTF-8.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, at_start, blank, carry = 0, True, True, ""
    with path.open("rb") as handle:
        while True:
            raw = handle.read(read_bytes)
            final = not raw
            if b"\x00" in raw:
                raise DataError(f"{path}: looks like a binary file (it contains NUL bytes), not text")
            blank = blank and not raw.strip()
            buffered = len(decoder.getstate()[0])  # bytes of a character cut by the previous read
            try:
                text = carry + decoder.decode(raw, final=final)
            except UnicodeDecodeError as error:
                raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset "
                                f"{offset - buffered + error.start})") from None
            offset += len(raw)
            if at_start:
                text = text.lstrip("\ufeff")
                at_start = not text
            carry = ""
            if not final and text.endswith("\r"):  # its "\n" may open the next read
                text, carry = text[:-1], "\r"
            text = text.replace("\r\n", "\n")
            if text:
                yield text
            if final:
                break
    if blank:
        raise DataError(f"{path}: the file is empty")


# ---------------------------------------------------------------------------------------------
# Token ids, stored compactly: one byte per token when the vocabulary has at most 256 entries,
# two up to 65,536. A text of a billion characters is then a billion bytes, not the 8 GB of a
# tensor of int64 (or the 28 GB of a Python list of ints).

MEMMAP_BYTES = 1 << 28  # token arrays this large live in a memory-mapped temporary file


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id of a vocabulary of ``vocab_size``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise DataError(f"a vocabulary of {vocab_size} tokens is too large")


def new_token_array(length: int, dtype: np.dtype) -> np.ndarray:
    """An array for ``length`` token ids; a large one is memory-mapped (as nanoGPT's ``train.bin``).

    The mapped file is an unnamed temporary file (removed when the array is dropped), so the
    operating system can write the ids out and read them back instead of holding them all in memory.
    """
    if length * np.dtype(dtype).itemsize < MEMMAP_BYTES:
        return np.empty(length, dtype)
    return np.memmap(tempfile.TemporaryFile(prefix="book-token-ids-"), dtype=dtype, mode="w+", shape=(length,))


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class CharIds:
    """Text to character ids, vectorised: a lookup table from Unicode code point to id."""

    def __init__(self, vocabulary: str):
        self.vocabulary = vocabulary
        points = _code_points(vocabulary)
        self.table = np.full(int(points.max()) + 2, -1, np.int32)  # the last entry: any larger code point
        self.table[points] = np.arange(len(points))
        self.dtype = token_dtype(len(vocabulary))

    def __call__(self, text: str, offset: int = 0) -> np.ndarray:
        """The ids of ``text`` (its first character at position ``offset`` of the whole text)."""
        points = _code_points(text)
        ids = self.table[np.minimum(points, len(self.table) - 1)]
        unknown = ids < 0
        if unknown.any():
            characters = sorted(chr(point) for point in np.unique(points[unknown]))
            raise UnknownCharacterError(
                f"{len(characters)} character(s) not in the vocabulary: {', '.join(map(repr, characters[:20]))} "
                f"(first at position {offset + int(np.argmax(unknown))}); the vocabulary has "
                f"{len(self.vocabulary)} characters")
        return ids.astype(self.dtype)


def encode_text(tokenizer, text: str) -> np.ndarray:
    """The token ids of ``text`` in the smallest integer type that holds them."""
    if isinstance(tokenizer, CharTokenizer):
        return CharIds(tokenizer.vocabulary)(text)
    return np.asarray(tokenizer.encode(text), dtype=token_dtype(tokenizer.vocab_size))


def text_file_vocabulary(path: str | pathlib.Path) -> tuple[str, int]:
    """(the characters a text file uses, in code-point order; its length in characters), one pass."""
    seen = np.zeros(0x110000, bool)
    length = 0
    for piece in iter_text_file(path):
        points = _code_points(piece)
        seen[points] = True
        length += len(points)
    return "".join(map(chr, np.flatnonzero(seen))), length


def encode_text_file(path: str | pathlib.Path, tokenizer=None):
    """(token ids of a text file, the tokenizer): the file read in pieces, the ids stored compactly.

    Without ``tokenizer``, a character tokenizer of the file's own characters is made. Peak memory
    is the array of ids (a byte per character for up to 256 distinct characters) and a few pieces.
    """
    if tokenizer is not None and not isinstance(tokenizer, CharTokenizer):
        return encode_text(tokenizer, load_text_file(path)), tokenizer  # BPE reads the text whole
    vocabulary, length = text_file_vocabulary(path)
    if tokenizer is None:
        tokenizer = CharTokenizer(vocabulary)
    char_ids = CharIds(tokenizer.vocabulary)
    ids = new_token_array(length, char_ids.dtype)
    filled = 0
    for piece in iter_text_file(path):
        ids[filled:filled + len(piece)] = char_ids(piece, filled)
        filled += len(piece)
    return ids, tokenizer


def split_ids(ids: np.ndarray, val_fraction: float, newline_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`split_text` on token ids: the last ``val_fraction`` (from a line break on) is validation.

    The two parts are views of ``ids``; nothing is copied.
    """
    if not 0 < val_fraction < 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    cut = int(len(ids) * (1 - val_fraction))
    if newline_id is not None:
        step = 1 << 20
        for start in range(cut, len(ids), step):
            found = np.flatnonzero(ids[start:start + step] == newline_id)
            if len(found):
                newline = start + int(found[0])
                if newline + 1 < len(ids):
                    cut = newline + 1
                break
    if cut <= 0 or cut >= len(ids):
        raise DataError(f"text of {len(ids)} characters is too short to split")
    return ids[:cut], ids[cut:]


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
