"""Code generation on Python's standard library: the tasks and their metrics (Chapter 8).

The code is :func:`book.data.load_code_corpus`: the top-level modules of one Python's standard
library, with whole modules held out, so every completion scored here is of code the model
has never read. The few-shot experiment on it is :mod:`book.experiments.code_adaptation`.
"""
from __future__ import annotations

import ast
import dataclasses
import random
import re

from book.applications.scoring import common_prefix_length, greedy_continuations
from book.data import CodeCorpus
from book.model import GPT
from book.paths import ROOT
from book.tasks import TaskError

CODE_CHECKPOINT = ROOT / "checkpoints" / "stdlib-code"


PROMPT_CHARS = 128  # every prompt has this many characters, so prompts run as one batch
LINE_CHARS = 80  # the longest line we ask for, plus its line break
BODY_CHARS = 128  # PROMPT_CHARS + BODY_CHARS fits the code model's context of 256
_DEF_LINE = re.compile(r"^( *)def \w+\(.*\)( -> .+)?:$")


@dataclasses.dataclass(frozen=True)
class LineTask:
    module: str
    prompt: str  # the PROMPT_CHARS characters before the point the model writes from
    line: str  # the reference: the rest of the line from that point, without its line break


@dataclasses.dataclass(frozen=True)
class FunctionTask:
    module: str
    prompt: str  # the PROMPT_CHARS characters that end with the ``def`` line
    header: str  # the ``def`` line
    body: str  # the reference body


def _lines_with_offsets(text: str):
    offset = 0
    for line in text.split("\n"):
        yield offset, line
        offset += len(line) + 1


def line_tasks(corpus: CodeCorpus, names: list[str], *, n: int, given: float = 0.0, seed: int = 0,
               region: tuple[float, float] = (0.0, 1.0)) -> list[LineTask]:
    """``n`` lines to complete, drawn from the modules ``names`` (from the ``region`` of each, as fractions).

    The prompt shows the ``given`` fraction of the line (after its indentation), so the model
    writes the rest: 0 asks for the whole line, indentation included. A line qualifies when it
    holds at least 8 non-blank characters, fits in LINE_CHARS, and follows at least
    PROMPT_CHARS characters of its module.
    """
    if not 0 <= given < 1:
        raise TaskError(f"given must be a fraction in [0, 1), got {given}")
    candidates = []
    for name in names:
        text = corpus.modules[name]
        low, high = int(len(text) * region[0]), int(len(text) * region[1])
        for start, line in _lines_with_offsets(text):
            if (start >= max(low, PROMPT_CHARS) and start + len(line) <= high
                    and len(line.strip()) >= 8 and len(line) < LINE_CHARS):
                indent = len(line) - len(line.lstrip(" "))
                cut = start + (indent + int((len(line) - indent) * given) if given else 0)
                candidates.append(LineTask(name, text[cut - PROMPT_CHARS:cut], text[cut:start + len(line)]))
    if len(candidates) < n:
        raise TaskError(f"asked for {n} lines, but the modules hold only {len(candidates)} that qualify")
    return random.Random(seed).sample(candidates, n)


def function_tasks(corpus: CodeCorpus, names: list[str], *, n: int, seed: int = 0,
                   max_body_chars: int = 100) -> list[FunctionTask]:
    """``n`` small functions or methods (one-line signature, body under ``max_body_chars``) to write.

    Python's own parser finds where each body ends, so docstrings and nested blocks count right.
    """
    candidates = []
    for name in names:
        text = corpus.modules[name]
        lines = text.split("\n")
        offsets = [start for start, _ in _lines_with_offsets(text)]
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.FunctionDef) or node.body[0].lineno != node.lineno + 1:
                continue
            header, end = lines[node.lineno - 1], offsets[node.lineno]
            body = "\n".join(lines[node.lineno:node.end_lineno])
            if _DEF_LINE.match(header) and end >= PROMPT_CHARS and len(body) <= max_body_chars:
                candidates.append(FunctionTask(name, text[end - PROMPT_CHARS:end], header, body))
    if len(candidates) < n:
        raise TaskError(f"asked for {n} functions, but the modules hold only {len(candidates)} that qualify")
    return random.Random(seed).sample(candidates, n)


def complete_lines(model: GPT, tokenizer, tasks: list[LineTask], batch_size: int = 64) -> list[str]:
    """The model's greedy completion of each task's line (up to its first line break)."""
    completions = []
    for first in range(0, len(tasks), batch_size):
        prompts = [task.prompt for task in tasks[first:first + batch_size]]
        completions += [text.split("\n")[0] for text in greedy_continuations(model, tokenizer, prompts, LINE_CHARS)]
    return completions


def write_bodies(model: GPT, tokenizer, tasks: list[FunctionTask], batch_size: int = 64) -> list[str | None]:
    """The greedy body the model writes after each ``def`` line; None where it has not ended in BODY_CHARS."""
    bodies = []
    for first in range(0, len(tasks), batch_size):
        batch = tasks[first:first + batch_size]
        texts = greedy_continuations(model, tokenizer, [task.prompt for task in batch], BODY_CHARS)
        bodies += [_written_body(task.header, text) for task, text in zip(batch, texts)]
    return bodies


def _written_body(header: str, text: str) -> str | None:
    """The body in generated ``text``: up to a line indented no deeper than ``header``.

    A docstring may hold such lines, so the body ends at the first of them before which the
    function parses, or else at the first of them; None if there is none (the body never ended).
    """
    indent = len(header) - len(header.lstrip(" "))
    lines = text.split("\n")
    ends = [i for i, line in enumerate(lines) if line.strip() and len(line) - len(line.lstrip(" ")) <= indent]
    bodies = ["\n".join(lines[:i]).rstrip() for i in ends]
    return next((body for body in bodies if parses(header, body)), bodies[0] if bodies else None)


def parses(header: str, body: str | None) -> bool:
    """Whether the function made of ``header`` and ``body`` is valid Python syntax."""
    if body is None or not body.strip():
        return False
    try:
        # The body may sit deeper than the header, as long as it is consistent; strings may
        # hold lines at any depth, so the header moves to column 0 rather than everything dedenting.
        ast.parse(header.lstrip(" ") + "\n" + body)
    except SyntaxError:
        return False
    return True


def prefix_share(predictions: list[str], references: list[str]) -> float:
    """The mean share of each reference written correctly before the first wrong character."""
    shares = [common_prefix_length(p, r) / len(r) for p, r in zip(predictions, references, strict=True)]
    return sum(shares) / len(shares)


def copy_previous_line(tasks: list[LineTask]) -> list[str]:
    """The baseline that repeats the last non-blank line of the prompt (for whole-line tasks)."""
    if any(not task.prompt.endswith("\n") for task in tasks):
        raise TaskError("copying the previous line is a baseline for whole lines (given=0) only")
    return [next((line for line in reversed(t.prompt.split("\n")[:-1]) if line.strip()), "") for t in tasks]
