"""Form: syllables per line and rhyme, to measure generated sonnets against the real ones (Chapter 8)."""
from __future__ import annotations

import re

from book.tasks import TaskError

_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


def syllables(line: str) -> int:
    """A rough syllable count: groups of vowels, minus a silent final "e" or "es" (``"hour"`` counts one).

    Good to about one syllable a line on Shakespeare's verse, which writes elided endings
    with an apostrophe ("dimm'd"); enough to tell verse of ten syllables from prose.
    """
    total = 0
    for word in re.findall(r"[a-z']+", line.lower()):
        word = word.replace("'", "")
        count = len(_VOWEL_GROUPS.findall(word))
        if count > 1 and (word.endswith("e") and not word.endswith(("le", "ee"))
                          or word.endswith("es") and not word.endswith(("ses", "xes", "zes", "ces", "ges"))):
            count -= 1  # a silent final "e", also before a plural "s" ("lives")
        total += max(count, 1) if word else 0
    return total


def rhymes(a: str, b: str) -> bool:
    """A crude rhyme: the last words end in the same two letters (and are different words)."""
    wa, wb = re.findall(r"[a-z]+", a.lower()), re.findall(r"[a-z]+", b.lower())
    if not wa or not wb or wa[-1] == wb[-1]:
        return False
    return wa[-1][-2:] == wb[-1][-2:]


def sonnets(text: str) -> list[list[str]]:
    """The sonnets of a text in which each is headed by its Roman numeral on a line of its own, as lists of lines.

    Text before the first numeral (the title, or the end of a sonnet cut in half) is dropped.
    """
    parts = re.split(r"\n\s*[IVXLC]+\s*\n", text)
    poems = [[line.strip() for line in part.split("\n") if line.strip()] for part in parts[1:]]
    return [poem for poem in poems if poem]


def form_metrics(lines: list[str]) -> dict[str, float]:
    """Share of lines with 9 to 11 syllables, mean syllables, and the abab rhyme rate of quatrains."""
    lines = [line for line in lines if line.strip()]
    if len(lines) < 4:
        raise TaskError(f"need at least four non-empty lines, got {len(lines)}")
    counts = [syllables(line) for line in lines]
    pairs = []
    for q in range(0, len(lines) - 3, 4):
        pairs += [rhymes(lines[q], lines[q + 2]), rhymes(lines[q + 1], lines[q + 3])]
    return {"lines": len(lines), "mean_syllables": sum(counts) / len(counts),
            "mean_characters": sum(map(len, lines)) / len(lines),
            "pentameter_share": sum(9 <= c <= 11 for c in counts) / len(counts),
            "rhyme_rate": sum(pairs) / len(pairs)}
