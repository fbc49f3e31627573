"""Question answering: "who speaks this line?" among a play's main speakers (Chapter 7)."""
from __future__ import annotations

import dataclasses
import random

from book.applications.scoring import continuation_logprobs, heldout_part
from book.data import Work
from book.model import GPT
from book.tasks import TaskError


@dataclasses.dataclass(frozen=True)
class SpeakerQuestion:
    work: str
    line: str
    answer: str
    candidates: tuple[str, ...]


def speaker_questions(work: Work, *, n_candidates: int = 4, n: int = 15, max_chars: int = 80,
                      seed: int = 0) -> list[SpeakerQuestion]:
    """``n`` held-out speeches of ``work`` by its ``n_candidates`` most talkative speakers."""
    candidates = tuple(list(work.speakers())[:n_candidates])
    if len(candidates) < 2:
        raise TaskError(f"{work.name} has fewer than two speakers")
    pool = [s for s in heldout_part(work).speeches() if s.speaker in candidates and len(s.text) >= 20]
    if len(pool) < n:
        raise TaskError(f"{work.name}: only {len(pool)} held-out speeches by {candidates}, {n} asked")
    chosen = random.Random(seed).sample(pool, n)
    return [SpeakerQuestion(work.name, s.text.split("\n")[0][:max_chars], s.speaker, candidates) for s in chosen]


def answer_speakers(model: GPT, tokenizer, questions: list[SpeakerQuestion]) -> list[str]:
    """For each question, the candidate under whose name the model finds the line most likely."""
    prompts, continuations = [], []
    for q in questions:
        for name in q.candidates:
            prompts.append(f"\n\n{name}.\n")
            continuations.append(q.line)
    scores = continuation_logprobs(model, tokenizer, prompts, continuations)
    answers, at = [], 0
    for q in questions:
        block = scores[at:at + len(q.candidates)]
        answers.append(q.candidates[int(block.argmax())])
        at += len(q.candidates)
    return answers
