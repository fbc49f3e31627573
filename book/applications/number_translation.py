"""Translating number words: English to French and other languages, references from ``num2words`` (Chapter 7).

Every reference translation is written by the ``num2words`` package (pinned in requirements.txt),
so the task is real language with its irregular corners (French *soixante et onze*,
*quatre-vingts*, *deux cents* but *deux cent un*), and the answer is known exactly. The numbers
1 to 9,999 are split once, at random: 10% are the test numbers, 10% of the rest the validation
numbers (for choosing settings) and the others the training numbers; every language uses the same
split, so no model ever sees a test number in any language.

* Part A: a small GPT trained from scratch on English -> French lines ``seven=sept`` (the loss
  counts only the French characters) and greedy decoding, scored by exact match on all the test
  numbers, against the analogy baseline below.
* Part B, *languages as tasks*: numbers 1 to 999 in many languages; MetaGPT (a pretrained GPT
  meta-trained further with MAML, :mod:`book.maml`) adapts to a language it never saw from
  K = 32 pairs, against the same pretraining fine-tuned, a model trained on the 32 pairs alone,
  and in-context prompting.

The analogy baseline (:class:`Analogy`) needs no network: it cuts each training translation into
the part for the last two digits (the ending that all translations of numbers with those last
two digits share) and the part before it (the most frequent beginning among the numbers with the
same thousands and hundreds digits), and glues the two parts of a new number together.

The results and the shipped checkpoints are written by

    python -m book.experiments.number_translation

(see that module for the settings); :func:`translation_table` reads the results (:func:`format_table` prints them) and
:func:`demo` translates a few test numbers with the shipped Part A model.
"""
from __future__ import annotations

import collections
import functools
import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from book.errors import BookError
from book.paths import CHECKPOINTS
from book.tokenize import CharTokenizer

MAX_NUMBER = 9999
PART_B_MAX = 999
TEST_SHARE = 0.1
VAL_SHARE = 0.1           # of the numbers left after the test numbers
SPLIT_SEED = 2026
SOURCE = "en"
EQUALS, NEWLINE = "=", "\n"
IGNORE = -100             # target id that the loss skips (English characters, padding)
MODEL_DIR = CHECKPOINTS / "applications" / "translation-model"

# Languages that num2words writes in the Latin alphabet, by family. Part B's split of them into
# meta-training, validation and test languages is in book.experiments.number_translation.
LANGUAGES = {
    "fr": "French", "es": "Spanish", "pt": "Portuguese", "it": "Italian", "ca": "Catalan", "ro": "Romanian",
    "de": "German", "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "is": "Icelandic",
    "pl": "Polish", "cs": "Czech", "sk": "Slovak", "sl": "Slovene", "sr": "Serbian (Latin)",
    "lt": "Lithuanian", "lv": "Latvian", "fi": "Finnish", "hu": "Hungarian", "tr": "Turkish",
    "az": "Azerbaijani", "id": "Indonesian", "eo": "Esperanto",
}


class TranslationError(BookError):
    """A number, language or model that the translation task cannot use."""


# --------------------------------------------------------------------------------------------
# Data: references, splits, lines.


@functools.lru_cache(maxsize=None)
def number_words(n: int, language: str = "fr") -> str:
    """``n`` (1 to 9,999) written out in ``language`` ("en" or a key of :data:`LANGUAGES`) by num2words."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_NUMBER:
        raise TranslationError(f"numbers run from 1 to {MAX_NUMBER}, got {n!r}")
    if language != SOURCE and language not in LANGUAGES:
        raise TranslationError(f"unknown language {language!r}; choose en or one of {', '.join(LANGUAGES)}")
    from num2words import num2words
    return num2words(n, lang=language)


@functools.lru_cache(maxsize=4)
def split_numbers(max_number: int = MAX_NUMBER, seed: int = SPLIT_SEED) -> dict[str, tuple[int, ...]]:
    """The numbers 1..``max_number`` cut at random into ``train``, ``val`` and ``test`` (sorted).

    The split of 1..9,999 is made once; a smaller ``max_number`` keeps each number's part (Part B
    uses the numbers up to 999 of the same split).
    """
    if not 1 <= max_number <= MAX_NUMBER:
        raise TranslationError(f"max_number must be within 1..{MAX_NUMBER}, got {max_number}")
    numbers = list(range(1, MAX_NUMBER + 1))
    random.Random(seed).shuffle(numbers)
    n_test = round(TEST_SHARE * MAX_NUMBER)
    n_val = round(VAL_SHARE * (MAX_NUMBER - n_test))
    parts = {"test": numbers[:n_test], "val": numbers[n_test:n_test + n_val], "train": numbers[n_test + n_val:]}
    return {name: tuple(sorted(n for n in part if n <= max_number)) for name, part in parts.items()}


def pair_line(n: int, language: str = "fr") -> str:
    """One example as the model reads it: ``"seventy-one=soixante et onze\\n"``."""
    return f"{number_words(n, SOURCE)}{EQUALS}{number_words(n, language)}{NEWLINE}"


def prompt(n: int) -> str:
    """What the model is given to translate ``n``: the English words and the sign ``=``."""
    return f"{NEWLINE}{number_words(n, SOURCE)}{EQUALS}"


def make_tokenizer(languages=("fr",), max_number: int = MAX_NUMBER) -> CharTokenizer:
    """The characters of English and ``languages`` over 1..``max_number``, with ``=`` and the line break."""
    chars = set(EQUALS + NEWLINE)
    for language in (SOURCE, *languages):
        for n in range(1, max_number + 1):
            chars.update(number_words(n, language))
    return CharTokenizer("".join(sorted(chars)))


def target_mask(x: torch.Tensor, equals_id: int, newline_id: int) -> torch.Tensor:
    """True where the next character belongs to a translation (after ``=``, up to and with its line break).

    ``x`` is (batch, time); position ``t`` counts when the last ``=`` or line break among
    ``x[:, :t + 1]`` is an ``=``. Before a window's first sign nothing counts: the window may
    start inside an English phrase or a translation, and it cannot tell which.
    """
    positions = torch.arange(x.shape[-1], device=x.device).expand_as(x)
    last_equals = torch.where(x == equals_id, positions, -1).cummax(-1).values
    last_newline = torch.where(x == newline_id, positions, -1).cummax(-1).values
    return last_equals > last_newline


class TranslationLoss(nn.Module):
    """A GPT whose loss counts only the characters of the translations (the English is given, not learned).

    Wraps the model for :func:`book.training.train`, which reads windows of a text of many lines;
    the wrapped GPT is what is saved and used.
    """

    def __init__(self, model: nn.Module, tokenizer: CharTokenizer):
        super().__init__()
        self.model = model
        self.equals_id, self.newline_id = tokenizer.encode(EQUALS + NEWLINE)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits, _ = self.model(idx)
        if targets is None:
            return logits, None
        targets = targets.masked_fill(~target_mask(idx, self.equals_id, self.newline_id), IGNORE)
        if not (targets != IGNORE).any():
            return logits, logits.sum() * 0.0
        return logits, F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)


def masked_loss(output, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (nats) of a GPT's ``(logits, _)`` output on targets where ``IGNORE`` marks the skipped ones."""
    return F.cross_entropy(output[0].flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE)


def pack(lines: list[str], tokenizer: CharTokenizer, length: int, count: int | None = None
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lines packed whole into rows of ``length`` characters: inputs and targets (translations only).

    Each row starts with a line break and holds as many consecutive lines as fit; the rest is
    padding whose targets are ``IGNORE``. ``count`` pads the result to that many rows.
    """
    rows, current = [], NEWLINE
    for line in lines:
        if len(line) + 1 > length:
            raise TranslationError(f"a line of {len(line)} characters does not fit a row of {length}")
        if len(current) + len(line) > length + 1:
            rows.append(current)
            current = NEWLINE
        current += line
    rows.append(current)
    count = len(rows) if count is None else count
    if count < len(rows):
        raise TranslationError(f"the lines need {len(rows)} rows, more than {count}")
    newline_id = tokenizer.encode(NEWLINE)[0]
    equals_id = tokenizer.encode(EQUALS)[0]
    x = torch.full((count, length), newline_id, dtype=torch.long)
    y = torch.full((count, length), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        ids = torch.tensor(tokenizer.encode(row))
        x[i, :len(ids) - 1], y[i, :len(ids) - 1] = ids[:-1], ids[1:]
    y = y.masked_fill(~target_mask(x, equals_id, newline_id), IGNORE)
    return x, y


# --------------------------------------------------------------------------------------------
# Greedy decoding and scoring.


@torch.no_grad()
def translate(model: nn.Module, tokenizer: CharTokenizer, prompts: list[str], max_chars: int = 64,
              batch_size: int = 256) -> list[str]:
    """The greedy continuation of every prompt up to its line break (not included).

    Prompts of one length are decoded together (no padding, so nothing the model never saw in
    training), each batch with a key-value cache; a prompt that would overflow the context is refused.
    """
    model.eval()
    limit = model.config.context_length
    newline_id = tokenizer.encode(NEWLINE)[0]
    by_length = collections.defaultdict(list)
    for index, text in enumerate(prompts):
        if len(text) >= limit:
            raise TranslationError(f"a prompt of {len(text)} characters leaves no room in a context of {limit}")
        by_length[len(text)].append(index)
    answers = [""] * len(prompts)
    for length, indices in by_length.items():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            ids = torch.tensor([tokenizer.encode(prompts[i]) for i in chunk])
            cache = model.new_cache(len(chunk))
            logits, _ = model(ids, cache=cache)
            out, done = [], torch.zeros(len(chunk), dtype=torch.bool)
            for _ in range(min(max_chars, limit - length)):
                token = logits[:, -1].argmax(-1)
                out.append(token)
                done |= token == newline_id
                if done.all() or cache.length >= limit:
                    break
                logits, _ = model(token[:, None], cache=cache)
            generated = torch.stack(out, 1).tolist()
            for i, row in zip(chunk, generated):
                text = tokenizer.decode(row)
                answers[i] = text.split(NEWLINE, 1)[0]
    return answers


def translate_numbers(model: nn.Module, tokenizer: CharTokenizer, numbers, context: str = "") -> list[str]:
    """Greedy translations of ``numbers`` from their English words, after ``context`` (whole lines)."""
    return translate(model, tokenizer, [context + prompt(n) for n in numbers])


def exact_matches(predictions: list[str], numbers, language: str) -> list[bool]:
    """Whether each prediction is exactly num2words' writing of its number in ``language``."""
    if len(predictions) != len(numbers):
        raise TranslationError(f"{len(predictions)} predictions for {len(numbers)} numbers")
    return [p == number_words(n, language) for p, n in zip(predictions, numbers)]


def mcnemar_p(first: list[bool], second: list[bool]) -> float:
    """Two-sided exact McNemar p-value of paired outcomes (a binomial test on the discordant pairs)."""
    if len(first) != len(second):
        raise TranslationError("paired outcomes must have one length")
    b = sum(1 for a, c in zip(first, second) if a and not c)
    c = sum(1 for a, c_ in zip(first, second) if c_ and not a)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(0, min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


# --------------------------------------------------------------------------------------------
# The analogy baseline.


def _common_suffix(texts) -> str:
    texts = list(texts)
    shortest = min(map(len, texts))
    size = 0
    while size < shortest and len({t[len(t) - size - 1] for t in texts}) == 1:
        size += 1
    return texts[0][len(texts[0]) - size:]


class Analogy:
    """Translate by analogy with the training pairs: the beginning of one, the ending of another.

    The ending of the last two digits ``d`` is the longest ending shared by every training
    translation of a number whose last two digits are ``d``, without a leading space or hyphen
    (so ``quarante-cinq`` for 45 in French); a translation minus its ending is its beginning, and
    the beginning of a new number is the most frequent beginning among the training numbers with
    its thousands and hundreds digits.
    A number whose ending or beginning was never seen gets no answer (the empty string).
    """

    def __init__(self, pairs: dict[int, str]):
        if not pairs:
            raise TranslationError("the analogy baseline needs at least one training pair")
        by_ending = collections.defaultdict(list)
        for n, text in pairs.items():
            by_ending[n % 100].append(text)
        # A shared ending that starts with a separator leaves it to the beginning: "vingt", not " vingt".
        self.endings = {d: _common_suffix(texts).lstrip(" -,") for d, texts in by_ending.items()}
        beginnings = collections.defaultdict(collections.Counter)
        for n, text in pairs.items():
            ending = self.endings[n % 100]
            beginnings[n // 100][text[:len(text) - len(ending)]] += 1
        self.beginnings = {head: counts.most_common(1)[0][0] for head, counts in beginnings.items()}

    def __call__(self, n: int) -> str:
        if n % 100 not in self.endings or n // 100 not in self.beginnings:
            return ""
        return self.beginnings[n // 100] + self.endings[n % 100]


# --------------------------------------------------------------------------------------------
# For the chapter: the results table and a live demo.


def translation_table(path=None) -> list[dict]:
    """The rows of ``checkpoints/applications/results/translation.json``, one dict per method and task."""
    from book.applications.results import read_results
    rows = read_results("translation", path)["results"]
    return [{"task": r["task"], "method": r["method"], "exact match": r["value"], "95% low": r["ci95"][0],
             "95% high": r["ci95"][1], "n": r["n"], "baseline": r["is_baseline"]} for r in rows]


def format_table(rows: list[dict]) -> str:
    """:func:`translation_table`'s rows as plain text, grouped by task."""
    lines = []
    for task in dict.fromkeys(r["task"] for r in rows):
        lines.append(task)
        for r in (r for r in rows if r["task"] == task):
            mark = " (baseline)" if r["baseline"] else ""
            lines.append(f"  {r['method'] + mark:<46} {r['exact match']:.3f}  "
                         f"[{r['95% low']:.3f}, {r['95% high']:.3f}]  n={r['n']}")
    return "\n".join(lines)


def load_model(name: str = "fr", directory=MODEL_DIR):
    """A shipped model (``fr``: Part A; ``finetune`` or ``pretrain-maml``: Part B) and its tokenizer."""
    from book.checkpoint import CheckpointError, load_checkpoint
    path = directory / name
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as error:
        raise TranslationError(f"{path}: {error} (python -m book.experiments.number_translation writes it)") from None
    return checkpoint.model.float().eval(), checkpoint.tokenizer


def demo(count: int = 8, seed: int = 0) -> list[dict]:
    """``count`` random test numbers translated to French by the shipped Part A model (a few seconds)."""
    if count < 1:
        raise TranslationError(f"count must be positive, got {count}")
    model, tokenizer = load_model("fr")
    numbers = random.Random(seed).sample(split_numbers()["test"], count)
    predictions = translate_numbers(model, tokenizer, numbers)
    return [{"number": n, "english": number_words(n, SOURCE), "model": p, "reference": number_words(n, "fr"),
             "correct": p == number_words(n, "fr")} for n, p in zip(numbers, predictions)]
