"""Text generation: the held-out loss of a model beside a counted n-gram, and the form of its verse (Chapter 8).

Two measures of a Shakespeare model. The *loss* on the corpus's held-out split, with every
scored character given at least half a context of text before it, next to the same positions
scored by the Witten-Bell n-gram of :mod:`book.ngram` (what counting alone achieves). The
*form* of the verse it writes: after the first four lines of a held-out poem, the share of the
next lines it samples that have 9 to 11 syllables, a line of pentameter give or take one
(:mod:`book.applications.form`).

    python -m book.experiments.generation   # writes checkpoints/applications/results/generation.json
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from book.applications.form import rhymes, sonnets, syllables
from book.generate import complete
from book.model import GPT
from book.paths import CHECKPOINTS
from book.tasks import TaskError

# The corpus's poems (everything else is a play): the text a model of verse is fine-tuned on.
POEMS = ("sonnets", "rape_of_lucrece", "lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle")
# The larger model fine-tuned on them by ``python -m book.experiments.generation``.
POET_CHECKPOINT = CHECKPOINTS / "applications" / "poet-model"


@torch.no_grad()
@torch.no_grad()
def per_character_losses(model: GPT, ids, stride: int | None = None, batch_size: int = 16) -> np.ndarray:
    """The loss (nats) of every character of ``ids`` from position ``context - stride`` on.

    Windows of the model's context length start every ``stride`` characters (half a context by
    default); each window scores only its last ``stride`` characters, so every scored character
    has at least ``context - stride`` characters before it, and each is scored once.
    """
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
    context = model.config.context_length
    stride = stride or context // 2
    if not 0 < stride <= context:
        raise TaskError(f"stride must be between 1 and the context {context}, got {stride}")
    if len(ids) <= context:
        raise TaskError(f"a text of {len(ids)} tokens is too short for a context of {context}")
    starts = list(range(0, len(ids) - context, stride))
    losses = []
    model.eval()
    for at in range(0, len(starts), batch_size):
        chunk = starts[at:at + batch_size]
        x = torch.stack([ids[s:s + context] for s in chunk])
        y = torch.stack([ids[s + 1:s + context + 1] for s in chunk])
        logits, _ = model(x)
        loss = F.cross_entropy(logits[:, -stride:].reshape(-1, logits.size(-1)), y[:, -stride:].reshape(-1),
                               reduction="none")
        losses.append(loss.view(len(chunk), stride))
    return torch.cat(losses).flatten().numpy()


def scored_positions(length: int, context: int, stride: int | None = None) -> np.ndarray:
    """The positions of the *targets* that :func:`per_character_losses` scores, in its order."""
    stride = stride or context // 2
    starts = np.arange(0, length - context, stride)
    return (starts[:, None] + context - stride + 1 + np.arange(stride)).flatten()


def block_interval(values: np.ndarray, block: int = 256) -> tuple[float, float, int]:
    """(mean, half-width of a 95% interval, number of blocks), treating runs of ``block`` values as units.

    Neighbouring characters' losses are correlated; blocks of text are closer to independent.
    """
    values = np.asarray(values, dtype=np.float64)
    blocks = values[: len(values) // block * block].reshape(-1, block).mean(axis=1)
    if len(blocks) < 2:
        raise TaskError(f"need at least two blocks of {block} values, got {len(values)} values")
    return float(values.mean()), float(1.96 * blocks.std(ddof=1) / np.sqrt(len(blocks))), len(blocks)


@dataclasses.dataclass
class VerseSample:
    """The lines a model wrote after a poem's first four lines, and their syllable counts."""

    prompt: list[str]
    lines: list[str]

    @property
    def syllables(self) -> list[int]:
        return [syllables(line) for line in self.lines]

    @property
    def in_metre(self) -> int:
        """How many lines have 9 to 11 syllables."""
        return sum(9 <= count <= 11 for count in self.syllables)

    @property
    def rhyming_pairs(self) -> tuple[int, int]:
        """(rhyming pairs, pairs) among lines (1, 3) and (2, 4) of each complete quatrain."""
        pairs = [rhymes(self.lines[q + a], self.lines[q + a + 2])
                 for q in range(0, len(self.lines) - 3, 4) for a in (0, 1)]
        return sum(pairs), len(pairs)


def stanzas(text: str, size: int) -> list[list[str]]:
    """The poems of ``text`` cut into groups of ``size`` non-empty lines (blank lines separate groups)."""
    groups = [[line.strip() for line in part.split("\n") if line.strip()] for part in text.split("\n\n")]
    return [group[:size] for group in groups if len(group) >= size]


def held_out_sonnets(text: str) -> list[list[str]]:
    """The complete (14-line) sonnets of a held-out piece of the *Sonnets*."""
    return [poem for poem in sonnets(text) if len(poem) == 14]


def sample_verse(model: GPT, tokenizer, poems: list[list[str]], *, temperature: float, n_lines: int = 8,
                 max_new_tokens: int = 400, seed: int = 0) -> list[VerseSample]:
    """For each poem, sample after its first four lines and keep the first ``n_lines`` non-empty lines.

    Poem ``i`` is sampled with the generator seeded ``seed + i``, so a run is reproducible.
    """
    samples = []
    for i, poem in enumerate(poems):
        prompt = "\n".join(poem[:4]) + "\n"
        text = complete(model, tokenizer, prompt, max_new_tokens=max_new_tokens, do_sample=True,
                        temperature=temperature, generator=torch.Generator().manual_seed(seed + i))
        lines = [line for line in text[len(prompt):].split("\n") if line.strip()][:n_lines]
        samples.append(VerseSample(poem[:4], lines))
    return samples


def verse_summary(samples: list[VerseSample]) -> dict:
    """Lines written, lines in metre (9 to 11 syllables), rhyming pairs, and their shares."""
    lines = sum(len(s.lines) for s in samples)
    in_metre = sum(s.in_metre for s in samples)
    rhyming = sum(s.rhyming_pairs[0] for s in samples)
    pairs = sum(s.rhyming_pairs[1] for s in samples)
    return {"poems": len(samples), "lines": lines, "in_metre": in_metre,
            "metre_share": in_metre / lines if lines else 0.0,
            "rhyming_pairs": rhyming, "pairs": pairs, "rhyme_share": rhyming / pairs if pairs else 0.0,
            "mean_syllables": float(np.mean([c for s in samples for c in s.syllables])) if lines else 0.0}
