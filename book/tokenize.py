# Generated from chapters/01_text_to_vectors.ipynb by `python -m book.tooling.sync`: edit the notebook, not this file.
"""Tokenizers that turn text into integer ids and back: characters and byte-pair
encoding."""
from __future__ import annotations

import operator
import os
import re
from collections import Counter
from collections.abc import Iterable

from tqdm.auto import tqdm


# Chapter 1 (From text to vectors), section: 1.1 Characters
class UnknownCharacterError(ValueError):
    """The text holds a character that the tokenizer's vocabulary does not have."""


# Chapter 1 (From text to vectors), section: 1.1 Characters
def _unknown_characters(text: str, known, tokenizer) -> UnknownCharacterError:
    """The error for ``text`` holding characters outside ``known``, naming them and
    where."""
    unknown = sorted(set(text) - set(known))
    first = next(index for index, char in enumerate(text) if char not in known)
    return UnknownCharacterError(
        f"{len(unknown)} character(s) not in the vocabulary: "
        f"{', '.join(map(repr, unknown))} "
        f"(first at position {first}); the vocabulary is {tokenizer!r}"
    )


# Chapter 1 (From text to vectors), section: 1.1 Characters
def _check_ids(ids: Iterable[int], vocab_size: int, what: str) -> list[int]:
    """``ids`` as a list of ints, or a ValueError naming the first id outside the
    vocabulary."""
    checked = []
    for position, token_id in enumerate(ids):
        try:
            # accepts numpy and 0-d torch integers, not floats
            token_id = operator.index(token_id)
        except TypeError:
            raise ValueError(
                f"token ids must be integers; got {token_id!r} at position {position}"
            ) from None
        if not 0 <= token_id < vocab_size:
            raise ValueError(
                f"token id {token_id} at position {position} is out of range for a "
                "vocabulary "
                f"of {vocab_size} {what} (valid ids are 0 to {vocab_size - 1})"
            )
        checked.append(token_id)
    return checked


# Chapter 1 (From text to vectors), section: 1.1 Characters
class CharTokenizer:
    """One token per character; the id of a character is its position in
    ``vocabulary``."""

    def __init__(self, vocabulary: str):
        if not isinstance(vocabulary, str):
            raise TypeError(
                "vocabulary must be a string of characters, got "
                f"{type(vocabulary).__name__}"
            )
        if not vocabulary:
            raise ValueError(
                "vocabulary is empty: a tokenizer needs at least one character"
            )
        repeated = sorted({c for c in vocabulary if vocabulary.count(c) > 1})
        if repeated:
            raise ValueError(
                f"vocabulary repeats the character(s) {', '.join(map(repr, repeated))}"
            )
        self.vocabulary = vocabulary
        self.char_to_id = {char: index for index, char in enumerate(vocabulary)}

    @classmethod
    def from_text(cls, text: str) -> "CharTokenizer":
        """The tokenizer whose vocabulary is the sorted set of characters in
        ``text``."""
        if not text:
            raise ValueError("cannot build a vocabulary from empty text")
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.char_to_id[char] for char in text]
        except KeyError:
            raise _unknown_characters(text, self.char_to_id, self) from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(
            self.vocabulary[i] for i in _check_ids(ids, self.vocab_size, "characters")
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable description, for checkpoints."""
        return {"type": "char", "vocabulary": self.vocabulary}

    @classmethod
    def from_dict(cls, data: dict) -> "CharTokenizer":
        if data.get("type") != "char" or not isinstance(data.get("vocabulary"), str):
            raise ValueError(
                f"not a character tokenizer description: {str(data)[:80]!r}"
            )
        return cls(data["vocabulary"])

    def __repr__(self):
        preview = (
            self.vocabulary
            if len(self.vocabulary) <= 20
            else self.vocabulary[:20] + "..."
        )
        return f"CharTokenizer(vocab_size={self.vocab_size}, vocabulary={preview!r})"


# Chapter 1 (From text to vectors), section: 1.2 Byte-pair encoding > Pre-tokenization
# A pre-token is a word with the space before it, a number, a run of punctuation, a run
# of newlines or a run of other spaces. Merges never cross these boundaries, so a token
# is never half of one word and half of the next. Letters are [^\W\d_]: any alphabet,
# not only ASCII.
PRETOKEN_PATTERN = (
    r" ?[^\W\d_]+(?:'[^\W\d_]+)*"  # a word, its leading space, inner apostrophes
    r"| ?\d+"  # a number
    r"| ?(?:[^\s\w]|_)+"  # punctuation
    r"|\n+"  # line breaks
    r"|[^\S\n]+(?!\S)"  # spaces, leaving the last one to the next word
    r"|[^\S\n]+"
)
_PRETOKEN = re.compile(PRETOKEN_PATTERN)


# Chapter 1 (From text to vectors), section: 1.2 Byte-pair encoding > Pre-tokenization
def pretokenize(text: str) -> list[str]:
    """Split ``text`` into pre-tokens; joining them gives ``text`` back exactly."""
    return _PRETOKEN.findall(text)


# Chapter 1 (From text to vectors), section: 1.2 Byte-pair encoding > Training
def _progress_hidden() -> bool:
    # tqdm's notebook bars force disable=False and so ignore TQDM_DISABLE; honour it
    # here.
    return os.environ.get("TQDM_DISABLE", "").lower() in {"1", "true", "yes"}


# Chapter 1 (From text to vectors), section: 1.2 Byte-pair encoding > Training
def _merge_pair(
    symbols: tuple[int, ...], pair: tuple[int, int], new_id: int
) -> tuple[int, ...]:
    """Replace each occurrence of ``pair`` in ``symbols`` by ``new_id``, scanning left
    to right."""
    merged, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return tuple(merged)


# Chapter 1 (From text to vectors), section: 1.2 Byte-pair encoding > Training
def _pairs(symbols: tuple[int, ...]) -> Counter:
    return Counter(zip(symbols, symbols[1:]))


# Chapter 1 (From text to vectors), section: 1.2 Byte-pair encoding > Training
class BPETokenizer:
    """Byte-pair encoding over characters (Sennrich et al., 2016), learned on
    pre-tokenized words.

    ``id_to_token[i]`` is the text of token ``i``: first the alphabet in code-point
    order, then one token per merge. ``merges`` lists the merged pairs of token texts,
    in the order learned.
    """

    def __init__(self, alphabet: str, merges: list[tuple[str, str]]):
        if not alphabet:
            raise ValueError(
                "alphabet is empty: a tokenizer needs at least one character"
            )
        if "".join(sorted(set(alphabet))) != alphabet:
            raise ValueError(
                "alphabet must list each character once, in code-point order"
            )
        self.alphabet = alphabet
        self.id_to_token: list[str] = list(alphabet)
        self.vocab: dict[str, int] = {char: i for i, char in enumerate(alphabet)}
        self.merges: list[tuple[str, str]] = []
        # a pair of ids -> (its rank, the id of the token it merges into)
        self._merge_ranks: dict[tuple[int, int], tuple[int, int]] = {}
        for left, right in merges:
            self._add_merge(left, right)
        self._cache: dict[str, tuple[int, ...]] = {}
        # Filled by train(): how often each merged pair occurred, and how many other
        # pairs were exactly as frequent when it was chosen (decided by the tie rule).
        self.merge_counts: list[int] = []
        self.merge_ties: list[int] = []

    def _add_merge(self, left: str, right: str) -> int:
        for part in (left, right):
            if part not in self.vocab:
                raise ValueError(
                    f"merge ({left!r}, {right!r}) uses {part!r}, which is not a token "
                    "yet"
                )
        token = left + right
        # The same text can come from two merges: keep one id for it.
        if token not in self.vocab:
            self.vocab[token] = len(self.id_to_token)
            self.id_to_token.append(token)
        pair = (self.vocab[left], self.vocab[right])
        self._merge_ranks[pair] = (len(self.merges), self.vocab[token])
        self.merges.append((left, right))
        return self.vocab[token]

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    @classmethod
    def train(
        cls, text: str, num_merges: int, min_frequency: int = 2, alphabet: str = ""
    ) -> "BPETokenizer":
        """Learn up to ``num_merges`` merges from ``text``.

        Each step merges the most frequent adjacent pair of tokens, counted over the
        unique pre-tokens weighted by how often they occur. Equal counts go to the pair
        with the smaller (left id, right id), the rule of the ``tokenizers`` library.
        Training stops early when no pair occurs ``min_frequency`` times. ``alphabet``
        adds characters the text may lack.
        """
        if not text:
            raise ValueError("cannot train a tokenizer on empty text")
        if num_merges < 0:
            raise ValueError(f"num_merges must be 0 or more, got {num_merges}")
        tokenizer = cls("".join(sorted(set(text) | set(alphabet))), [])
        word_counts = Counter(pretokenize(text))
        words = [tuple(tokenizer.vocab[c] for c in word) for word in word_counts]
        counts = list(word_counts.values())
        pair_counts: Counter = Counter()
        # a pair -> the indices of the words holding it
        where: dict[tuple[int, int], set[int]] = {}
        for index, (symbols, count) in enumerate(zip(words, counts)):
            for pair, n in _pairs(symbols).items():
                pair_counts[pair] += n * count
                where.setdefault(pair, set()).add(index)

        for _ in tqdm(range(num_merges), desc="BPE merges", disable=_progress_hidden()):
            if not pair_counts:
                break
            pair = max(pair_counts, key=lambda p: (pair_counts[p], -p[0], -p[1]))
            best = pair_counts[pair]
            if best < max(min_frequency, 1):
                break
            tokenizer.merge_counts.append(best)
            tokenizer.merge_ties.append(
                sum(count == best for count in pair_counts.values()) - 1
            )
            new_id = tokenizer._add_merge(
                tokenizer.id_to_token[pair[0]], tokenizer.id_to_token[pair[1]]
            )
            for index in where.pop(pair):
                old, count = words[index], counts[index]
                new = _merge_pair(old, pair, new_id)
                for p, n in _pairs(old).items():
                    pair_counts[p] -= n * count
                    if pair_counts[p] <= 0:
                        del pair_counts[p]
                for p, n in _pairs(new).items():
                    pair_counts[p] += n * count
                    where.setdefault(p, set()).add(index)
                words[index] = new
        return tokenizer

    def _encode_word(self, word: str) -> tuple[int, ...]:
        if word in self._cache:
            return self._cache[word]
        symbols = tuple(self.vocab[c] for c in word)
        while len(symbols) > 1:
            # Apply the earliest-learned merge present in the word, as training did.
            ranked = [
                self._merge_ranks[p] + (p,)
                for p in zip(symbols, symbols[1:])
                if p in self._merge_ranks
            ]
            if not ranked:
                break
            _, new_id, pair = min(ranked)
            symbols = _merge_pair(symbols, pair, new_id)
        self._cache[word] = symbols
        return symbols

    def encode(self, text: str) -> list[int]:
        if not set(text) <= self.vocab.keys():
            raise _unknown_characters(text, self.vocab, self)
        return [i for word in pretokenize(text) for i in self._encode_word(word)]

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(
            self.id_to_token[i] for i in _check_ids(ids, self.vocab_size, "tokens")
        )

    def to_dict(self) -> dict:
        """A JSON-serialisable description, for checkpoints."""
        return {
            "type": "bpe",
            "pattern": PRETOKEN_PATTERN,
            "alphabet": self.alphabet,
            "merges": [list(pair) for pair in self.merges],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "BPETokenizer":
        if (
            data.get("type") != "bpe"
            or not isinstance(data.get("alphabet"), str)
            or "merges" not in data
        ):
            raise ValueError(f"not a BPE tokenizer description: {str(data)[:80]!r}")
        if data.get("pattern", PRETOKEN_PATTERN) != PRETOKEN_PATTERN:
            raise ValueError(
                "this BPE tokenizer was saved with a different pre-tokenization pattern"
            )
        return cls(data["alphabet"], [tuple(pair) for pair in data["merges"]])

    def __repr__(self):
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"
