"""Dialogue: pick the true next speech among four (Chapter 7)."""
from __future__ import annotations

import dataclasses
import random
import re

from book.applications.scoring import continuation_logprobs, heldout_part
from book.data import Work
from book.model import GPT
from book.tasks import TaskError


@dataclasses.dataclass(frozen=True)
class ReplyQuestion:
    work: str
    speech: str                   # the speaker's name and the end of the speech, as the corpus writes it
    candidates: tuple[str, ...]   # the openings of four speeches
    answer: int                   # the index of the true next speech


def reply_questions(work: Work, *, n: int = 20, n_candidates: int = 4, speech_chars: int = 80,
                    reply_chars: int = 40, seed: int = 0) -> list[ReplyQuestion]:
    """``n`` held-out speeches of ``work``, each with its true reply among other speeches of the same tail."""
    speeches = [s for s in heldout_part(work).speeches() if len(s.text) >= 10]
    if len(speeches) < max(n + 1, n_candidates + 1):
        raise TaskError(f"{work.name}: only {len(speeches)} held-out speeches, {n} questions asked")
    rng = random.Random(seed)
    questions = []
    for i in rng.sample(range(len(speeches) - 1), n):
        others = rng.sample([j for j in range(len(speeches)) if j not in (i, i + 1)], n_candidates - 1)
        answer = rng.randrange(n_candidates)
        order = others[:answer] + [i + 1] + others[answer:]
        text = f"{speeches[i].speaker}.\n{speeches[i].text}"[-speech_chars:] + "\n\n"
        questions.append(ReplyQuestion(work.name, text, tuple(speeches[j].text[:reply_chars] for j in order), answer))
    return questions


def answer_replies(model: GPT, tokenizer, questions: list[ReplyQuestion]) -> list[int]:
    """The candidate each question's speech makes most likely, by total log-probability."""
    prompts = [q.speech for q in questions for _ in q.candidates]
    scores = continuation_logprobs(model, tokenizer, prompts, [c for q in questions for c in q.candidates])
    answers, at = [], 0
    for q in questions:
        answers.append(int(scores[at:at + len(q.candidates)].argmax()))
        at += len(q.candidates)
    return answers


def overlap_replies(questions: list[ReplyQuestion]) -> list[int]:
    """A baseline without a model: the candidate sharing most words with the speech (the first on ties)."""
    answers = []
    for q in questions:
        words = set(re.findall(r"[a-z']+", q.speech.lower()))
        shared = [len(words & set(re.findall(r"[a-z']+", c.lower()))) for c in q.candidates]
        answers.append(shared.index(max(shared)))
    return answers
