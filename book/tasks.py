"""Task families for meta-learning a language model (Chapter 6).

A *task* is a small language-modelling problem: a support set (a few hundred characters to
adapt on) and a query set (other text from the same source, on which the adapted model is
scored). Both are windows of ``length + 1`` token ids, so a window ``w`` gives the inputs
``w[:-1]`` and the next-character targets ``w[1:]``.

Three families:

* :class:`DialectFamily`: each task is a random first-order Markov chain over a small alphabet,
  with few possible successors per character, so that tasks conflict: what follows ``a`` in
  one dialect never follows it in another. Its entropy rate (bits per character) is known
  exactly, an oracle no model can beat on average.
* :class:`SpeakerFamily`: each task is one speaker of one play in the Shakespeare corpus.
  Whole plays are held out for validation and testing.
* :class:`CipherFamily`: the speakers' text with the letters ``etaoinsh`` permuted by a random
  substitution of each task's own, so that tasks conflict on real text: the same word is
  spelled differently in every task. The plain text of the same windows is kept as a reference.

Every family draws the same tasks for the same seed, and uses one shared character vocabulary
(:func:`shared_tokenizer`), so one model can read all of them.

    >>> family = DialectFamily()
    >>> tasks = family.sample("test", 4, seed=0)
    >>> tasks[0].support.shape          # (support windows, length + 1)
    torch.Size([8, 33])
"""
from __future__ import annotations

import dataclasses
import functools

import torch

from book.errors import BookError
from book.stats import bits  # noqa: F401  (re-exported: tasks report losses in bits)
from book.tokenize import CharTokenizer

SPLITS = ("train", "val", "test")
_SPLIT_OFFSET = {"train": 0, "val": 10**12, "test": 2 * 10**12}  # disjoint task streams per split


class TaskError(BookError):
    """A task or family that cannot be built as asked."""


@functools.lru_cache(maxsize=1)
def shared_tokenizer() -> CharTokenizer:
    """The character vocabulary of the whole corpus (84 characters), shared by every family."""
    from book.data import load_corpus
    return CharTokenizer.from_text(load_corpus().text)


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: ``support`` and ``query`` windows of token ids, shape (windows, length + 1)."""

    name: str
    support: torch.Tensor
    query: torch.Tensor
    oracle_bits: float | None = None  # the best achievable query loss, where it is known
    plain_query: torch.Tensor | None = None  # for ciphered tasks: the query windows before the cipher

    def __post_init__(self):
        for part in ("support", "query"):
            tensor = getattr(self, part)
            if tensor.dim() != 2 or tensor.shape[0] == 0 or tensor.shape[1] < 2:
                raise TaskError(f"task {self.name!r}: {part} must have shape (windows >= 1, length + 1 >= 2), "
                                f"got {tuple(tensor.shape)}")
        if self.support.shape[1] != self.query.shape[1]:
            raise TaskError(f"task {self.name!r}: support windows have {self.support.shape[1]} tokens, "
                            f"query windows {self.query.shape[1]}")

    @property
    def support_xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.support[:, :-1], self.support[:, 1:]

    @property
    def query_xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query[:, :-1], self.query[:, 1:]


def _check_sizes(num_tasks: int, support: int, query: int, length: int) -> None:
    for name, value in (("num_tasks", num_tasks), ("support", support), ("query", query), ("length", length)):
        if not isinstance(value, int) or value < 1:
            raise TaskError(f"{name} must be a positive integer, got {value!r}")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise TaskError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")


# --------------------------------------------------------------------------------------------
# Dialects: random Markov chains.


@dataclasses.dataclass(frozen=True)
class MarkovChain:
    """A first-order Markov chain over the characters of ``alphabet``.

    ``transitions[i, j]`` is the probability that character ``j`` follows character ``i``.
    """

    alphabet: str
    transitions: torch.Tensor

    def __post_init__(self):
        n = len(self.alphabet)
        if n < 2 or len(set(self.alphabet)) != n:
            raise TaskError(f"the alphabet needs at least two distinct characters, got {self.alphabet!r}")
        P = self.transitions
        if P.shape != (n, n):
            raise TaskError(f"transitions must be {n} x {n} for an alphabet of {n}, got {tuple(P.shape)}")
        if (P < 0).any() or not torch.allclose(P.sum(1), torch.ones(n, dtype=P.dtype), atol=1e-6):
            raise TaskError("each row of transitions must be a probability distribution")

    def stationary(self) -> torch.Tensor:
        """The distribution $\\pi$ with $\\pi P = \\pi$ (the chain's long-run character frequencies)."""
        P = self.transitions.double()
        n = P.shape[0]
        # pi (P - I) = 0 has one free scale; replace its last equation by sum(pi) = 1.
        A = (P - torch.eye(n, dtype=P.dtype)).T.clone()
        A[-1] = 1.0
        b = torch.zeros(n, dtype=P.dtype)
        b[-1] = 1.0
        pi = torch.linalg.solve(A, b)
        return pi.clamp_min(0) / pi.clamp_min(0).sum()

    def entropy_rate(self) -> float:
        """$H = -\\sum_i \\pi_i \\sum_j P_{ij} \\log_2 P_{ij}$ in bits per character."""
        P = self.transitions.double()
        row_entropy = -(torch.where(P > 0, P * torch.log2(P), torch.zeros_like(P))).sum(1)
        return float(self.stationary() @ row_entropy)

    def sample(self, windows: int, length: int, generator: torch.Generator) -> torch.Tensor:
        """``windows`` independent runs of ``length`` characters (as alphabet indices), started from $\\pi$."""
        states = torch.multinomial(self.stationary().float(), windows, replacement=True, generator=generator)
        runs = [states]
        P = self.transitions.float()
        for _ in range(length - 1):
            states = torch.multinomial(P[states], 1, generator=generator)[:, 0]
            runs.append(states)
        return torch.stack(runs, dim=1)


def random_markov_chain(alphabet: str, successors: int, generator: torch.Generator) -> MarkovChain:
    """A sparse random chain: every character has ``successors`` possible next characters.

    One successor of each character follows a random cycle through the whole alphabet, so
    every character can be reached from every other (the chain is irreducible and has one
    stationary distribution); the others are picked at random. Their probabilities are
    drawn from a flat Dirichlet distribution.
    """
    n = len(alphabet)
    if not 1 <= successors <= n:
        raise TaskError(f"successors must be between 1 and the alphabet size {n}, got {successors}")
    cycle = torch.randperm(n, generator=generator)
    nxt = torch.empty(n, dtype=torch.long)
    nxt[cycle] = cycle.roll(-1)
    P = torch.zeros(n, n)
    for i in range(n):
        others = [j for j in torch.randperm(n, generator=generator).tolist() if j != nxt[i]]
        chosen = [int(nxt[i])] + others[:successors - 1]
        weights = -torch.log(torch.rand(successors, generator=generator).clamp_min(1e-12))  # Dirichlet(1)
        P[i, chosen] = weights / weights.sum()
    return MarkovChain(alphabet, P)


@dataclasses.dataclass(frozen=True)
class DialectFamily:
    """Tasks that are random Markov "dialects" of a small alphabet (see :func:`random_markov_chain`)."""

    alphabet: str = "abcdefgh"
    successors: int = 3
    name: str = "dialects"

    def __post_init__(self):
        missing = sorted(set(self.alphabet) - set(shared_tokenizer().vocabulary))
        if missing:
            raise TaskError(f"alphabet characters {missing} are not in the shared vocabulary")
        if not 1 <= self.successors <= len(self.alphabet):
            raise TaskError(f"successors must be between 1 and {len(self.alphabet)}, got {self.successors}")

    def chain(self, split: str, index: int) -> MarkovChain:
        """The ``index``-th dialect of ``split`` (the same every time)."""
        _check_split(split)
        generator = torch.Generator().manual_seed(_SPLIT_OFFSET[split] + index)
        return random_markov_chain(self.alphabet, self.successors, generator)

    def sample(self, split: str, num_tasks: int, seed: int = 0, *, support: int = 8, query: int = 8,
               length: int = 32, first: int = 0) -> list[Task]:
        """``num_tasks`` dialects of ``split`` starting at ``first``; text drawn with ``seed``."""
        _check_split(split)
        _check_sizes(num_tasks, support, query, length)
        ids = torch.tensor(shared_tokenizer().encode(self.alphabet))
        tasks = []
        for index in range(first, first + num_tasks):
            chain = self.chain(split, index)
            generator = torch.Generator().manual_seed(seed * 7_919 + index)
            runs = ids[chain.sample(support + query, length + 1, generator)]
            oracle = round(chain.entropy_rate(), 6)
            tasks.append(Task(f"{split}-dialect-{index}", runs[:support], runs[support:], oracle))
        return tasks


# --------------------------------------------------------------------------------------------
# Speakers: real text.


@functools.lru_cache(maxsize=4)
def speaker_texts(min_chars: int = 3000) -> dict[str, list[tuple[str, str]]]:
    """Every speaker with at least ``min_chars`` characters, as (``play/speaker``, text) per split.

    Whole plays go to one split: every sixth play (in corpus order, from the first) is a test
    play, every sixth from the second a validation play, the rest are for meta-training. So a
    test speaker comes from a play the model has never seen.
    """
    from book.data import load_corpus
    splits = {split: [] for split in SPLITS}
    for index, play in enumerate(load_corpus().plays()):
        split = "test" if index % 6 == 0 else "val" if index % 6 == 1 else "train"
        lines: dict[str, list[str]] = {}
        for speech in play.speeches():
            lines.setdefault(speech.speaker, []).append(speech.text)
        for speaker, speeches in lines.items():
            text = "\n".join(speeches)
            if len(text) >= min_chars:
                splits[split].append((f"{play.name}/{speaker}", text))
    return splits


@dataclasses.dataclass(frozen=True)
class SpeakerFamily:
    """Tasks that are speakers of Shakespeare's plays; held-out plays for validation and test.

    A speaker needs at least ``min_chars`` characters of lines; 600 leaves 138 test speakers
    (from the held-out plays), each with enough text for 4 + 4 windows of 65 characters.
    """

    min_chars: int = 600
    name: str = "speakers"

    def speakers(self, split: str) -> list[str]:
        _check_split(split)
        return [name for name, _ in speaker_texts(self.min_chars)[split]]

    def sample(self, split: str, num_tasks: int, seed: int = 0, *, support: int = 8, query: int = 8,
               length: int = 32, first: int | None = None) -> list[Task]:
        """``num_tasks`` speakers of ``split``, each cut into disjoint support and query windows.

        Training draws speakers at random (with ``seed``); with ``first`` given, the speakers
        ``first, first + 1, ...`` of the split are taken in order (wrapping around), as for
        evaluation. The windows are non-overlapping pieces of the speaker's lines, shuffled
        with ``seed``, so support and query never share a character.
        """
        _check_split(split)
        _check_sizes(num_tasks, support, query, length)
        pool = speaker_texts(self.min_chars)[split]
        generator = torch.Generator().manual_seed(seed * 7_919 + _SPLIT_OFFSET[split] + (first or 0))
        if first is None:
            picks = torch.randint(len(pool), (num_tasks,), generator=generator).tolist()
        else:
            picks = [(first + i) % len(pool) for i in range(num_tasks)]
        tokenizer = shared_tokenizer()
        tasks = []
        for pick in picks:
            name, text = pool[pick]
            pieces = len(text) // (length + 1)
            if pieces < support + query:
                raise TaskError(f"{name} has {len(text)} characters, too few for {support} + {query} windows "
                                f"of {length + 1}")
            offset = int(torch.randint(len(text) - pieces * (length + 1) + 1, (1,), generator=generator))
            ids = torch.tensor(tokenizer.encode(text[offset:offset + pieces * (length + 1)]))
            windows = ids.view(pieces, length + 1)[torch.randperm(pieces, generator=generator)]
            tasks.append(Task(name, windows[:support], windows[support:support + query]))
        return tasks


@dataclasses.dataclass(frozen=True)
class CipherFamily:
    """Speakers' text under a random letter substitution of each task's own.

    The task's windows are those :class:`SpeakerFamily` draws with the same arguments; the
    letters of ``letters`` (lower and upper case alike) are then permuted at random, with a
    permutation drawn from the task's seed. A model that has not seen a task's text cannot know
    its spelling, which the support set (or the context) reveals.
    """

    letters: str = "etaoinsh"
    min_chars: int = 600
    name: str = "cipher"

    def __post_init__(self):
        vocabulary = set(shared_tokenizer().vocabulary)
        missing = sorted({c for c in self.letters + self.letters.upper() if c not in vocabulary})
        if missing or len(set(self.letters)) != len(self.letters) or len(self.letters) < 2:
            raise TaskError(f"cipher letters must be at least two distinct letters of the vocabulary, "
                            f"got {self.letters!r}")

    def substitution(self, split: str, seed: int, index: int) -> torch.Tensor:
        """The token-id table of task ``index``: ``table[ids]`` enciphers ``ids``."""
        tokenizer = shared_tokenizer()
        generator = torch.Generator().manual_seed(seed * 7_919 + _SPLIT_OFFSET[split] + 5_000_000 + index)
        order = torch.randperm(len(self.letters), generator=generator).tolist()
        table = torch.arange(tokenizer.vocab_size)
        for source, target in zip(self.letters, (self.letters[i] for i in order)):
            for a, b in ((source, target), (source.upper(), target.upper())):
                table[tokenizer.encode(a)[0]] = tokenizer.encode(b)[0]
        return table

    def sample(self, split: str, num_tasks: int, seed: int = 0, *, support: int = 8, query: int = 8,
               length: int = 32, first: int | None = None) -> list[Task]:
        plain = SpeakerFamily(self.min_chars).sample(split, num_tasks, seed, support=support, query=query,
                                                     length=length, first=first)
        start = 0 if first is None else first
        tasks = []
        for offset, task in enumerate(plain):
            table = self.substitution(split, seed, start + offset)
            tasks.append(Task(f"{task.name} (ciphered)", table[task.support], table[task.query],
                              plain_query=task.query))
        return tasks


FAMILIES = {"dialects": DialectFamily, "cipher": CipherFamily, "speakers": SpeakerFamily}


def family(name: str):
    """The task family called ``name`` (``dialects``, ``cipher`` or ``speakers``)."""
    if name not in FAMILIES:
        raise TaskError(f"unknown task family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]()

