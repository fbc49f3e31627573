"""Tone classification: is a passage from a comedy or a tragedy? Plays held out whole (Chapter 8).

The labels come from the First Folio of 1623, whose catalogue sorts the plays into Comedies,
Histories and Tragedies (:data:`FOLIO_GENRES`). A passage is 1,536 characters of speech (about 280
words; 40 from every play) with the list of persons, speakers' names, stage directions, proper names
(words the corpus never writes in lower case) and the words "comedy" and "tragedy" removed or masked,
so the label cannot be read off a title or a name. The plays are split into five folds, and every
passage of a test play is classified by models that never saw a labelled passage of that play. Three classifiers:

* a shipped Shakespeare GPT (``--checkpoint``; the book's larger model, ``shakespeare-large``, by
  default) as a classifier, as GPT-1 did (Radford et al. 2018): its hidden states pooled over the
  passage into a linear (logistic) head; the pooling (the final states' mean or last positions, one
  block's output, or every block's side by side) and the head's weight decay are chosen on
  validation plays inside each fold;
* a word-count multinomial Naive Bayes (written here with numpy), its Laplace smoothing chosen on
  validation plays;
* the majority class of the training plays;
* combined: the GPT's features (the pooling chosen for it) plus Naive Bayes' log-odds as one more
  feature, in one linear head; the log-odds of the head's training passages come from Naive Bayes
  models that never saw their play (:func:`cross_fitted_log_odds`), and the weight decay is chosen
  on validation plays;
* with ``--finetune``, the same GPT fine-tuned whole with a linear head (:class:`GenreClassifier`,
  :func:`fine_tune`), GPT-1's recipe proper: every 256-character window of a training passage
  carries the passage's label, a passage's logit is the mean of its windows', and the stopping
  point is chosen on validation plays held out of each fold's training plays.

The metric is balanced accuracy (the mean of the two classes' recalls), with a 95% interval from a
bootstrap over plays (plays resampled within each genre, all of a play's passages together), since
passages of one play are not independent. The results are written by

    python -m book.experiments.genre

(the larger model reads the 6,000 windows of 256 characters in about 210 s on one busy CPU core;
add ``--cache FILE`` to keep the features and rerun the rest alone, about three minutes; add
``--finetune`` for the fine-tuned GPT, about ten minutes a fold on one CPU core) to
``checkpoints/applications/results/sentiment.json``; the classifier of the first fold is shipped in
``checkpoints/applications/genre-model/`` for the demo.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
import random
import re

import numpy as np
import torch

from book.applications.results import read_results
from book.data import Corpus, Work, split_text
from book.errors import BookError
from book.paths import CHECKPOINTS

# The First Folio's catalogue, "A Catalogue of the severall Comedies, Histories, and Tragedies
# contained in this Volume" (Mr. William Shakespeares Comedies, Histories, & Tragedies, London,
# 1623, sig. A6; facsimile: Folger Shakespeare Library, STC 22273). Play names are the corpus's.
FOLIO_GENRES = {
    # Comedies, in the catalogue's order
    "tempest": "comedy", "two_gentlemen_of_verona": "comedy", "merry_wives_of_windsor": "comedy",
    "measure_for_measure": "comedy", "comedy_of_errors": "comedy", "much_ado_about_nothing": "comedy",
    "loves_labours_lost": "comedy", "midsummer_nights_dream": "comedy", "merchant_of_venice": "comedy",
    "as_you_like_it": "comedy", "taming_of_the_shrew": "comedy", "alls_well_that_ends_well": "comedy",
    "twelfth_night": "comedy", "winters_tale": "comedy",
    # Histories
    "john": "history", "richard_ii": "history", "henry_iv_part_1": "history", "henry_iv_part_2": "history",
    "henry_v": "history", "henry_vi_part_1": "history", "henry_vi_part_2": "history",
    "henry_vi_part_3": "history", "richard_iii": "history", "henry_viii": "history",
    # Tragedies (Cymbeline among them, as the Folio has it, though it ends happily)
    "coriolanus": "tragedy", "titus_andronicus": "tragedy", "romeo_and_juliet": "tragedy",
    "timon_of_athens": "tragedy", "julius_caesar": "tragedy", "macbeth": "tragedy", "hamlet": "tragedy",
    "lear": "tragedy", "othello": "tragedy", "antony_and_cleopatra": "tragedy", "cymbeline": "tragedy",
}
# Plays of the corpus left out, and why.
EXCLUDED = {
    "troilus_and_cressida": "printed in the Folio between the histories and the tragedies but missing from its "
                            "catalogue (its quarto calls it a history, its Folio pages a tragedy): no genre",
    "pericles": "not in the First Folio",
}
LABELS = ("comedy", "tragedy")  # the histories are left out: their genre is a subject (English kings), not a tone
PASSAGE_CHARS = 1536  # twelve of the shipped model's 128-character windows (about 280 words)
PASSAGES_PER_PLAY = 40  # the same number from every play, so no play outweighs another
N_FOLDS = 5
MODEL_DIR = CHECKPOINTS / "applications" / "genre-model"
NAME_MASK = "X"
_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_INLINE_DIRECTION = re.compile(r"\[[^\]]*\]?")
_FIRST_ACT = re.compile(r"^(?:ACT|Act|INDUCTION)\b", re.MULTILINE)  # the list of persons ends here
_GENRE_WORD = re.compile(r"\b(?:comed|comic|traged|tragic)\w*", re.IGNORECASE)


class GenreError(BookError):
    """A genre-classification request that cannot be met (unknown play, too little text, bad setting)."""


@dataclasses.dataclass(frozen=True)
class Passage:
    play: str
    label: str  # one of LABELS
    text: str
    heldout_tail: bool  # from the last 10% of the play, which the shipped model never trained on


def labelled_plays(corpus: Corpus) -> dict[str, str]:
    """Play name to "comedy" or "tragedy", for every play of ``corpus`` the Folio calls one of the two."""
    plays = {}
    for work in corpus.plays():
        if work.name in EXCLUDED:
            continue
        if work.name not in FOLIO_GENRES:
            raise GenreError(f"play {work.name!r} has no First Folio genre; add it to FOLIO_GENRES or EXCLUDED")
        if FOLIO_GENRES[work.name] in LABELS:
            plays[work.name] = FOLIO_GENRES[work.name]
    return plays


def proper_names(corpus: Corpus) -> frozenset[str]:
    """Words of two or more letters that appear in the corpus only capitalised: names of people and places.

    "Hamlet", "Verona", "Titania" are names; "King", "Will" and "Bottom" are not (they occur in lower
    case too). A rare word that only ever opens a verse line is masked with them, in either genre.
    """
    capitalised, lower = set(), set()
    for word in _WORD.findall(corpus.text):
        (lower if word[0].islower() else capitalised).add(word)
    return frozenset(word for word in capitalised
                     if len(word) > 1 and word.lower() not in lower and not word.isupper())


def clean_speech(text: str, names: frozenset[str]) -> str:
    """A speech with inline stage directions removed and proper names and genre words replaced by ``X``."""
    text = _INLINE_DIRECTION.sub("", text)
    text = _GENRE_WORD.sub(NAME_MASK, text)
    text = _WORD.sub(lambda match: NAME_MASK if match.group(0) in names else match.group(0), text)
    text = re.sub(r"[ \t]+", " ", text)
    return "\n".join(line.strip() for line in text.split("\n") if line.strip())


def speech_text(work: Work, names: frozenset[str]) -> str:
    """Every speech of ``work``, cleaned, one after another (speakers' names never appear)."""
    return "\n".join(filter(None, (clean_speech(speech.text, names) for speech in work.speeches())))


def play_passages(work: Work, label: str, names: frozenset[str], *, n: int = PASSAGES_PER_PLAY,
                  chars: int = PASSAGE_CHARS) -> list[Passage]:
    """``n`` passages of ``chars`` characters, evenly spaced through the play's speeches.

    The list of persons before the first act is skipped. The play is cut where the shipped
    model's training text ends (its last 10% was held out of training); passages from
    that tail are marked ``heldout_tail``.
    """
    head, tail = split_text(work.text, 0.1)
    first_act = _FIRST_ACT.search(head)
    if first_act is None:
        raise GenreError(f"{work.name} has no line opening its first act (or induction)")
    head = head[first_act.start():]
    pieces = []
    for part, is_tail in ((head, False), (tail, True)):
        stream = speech_text(dataclasses.replace(work, text=part), names)
        pieces += [(stream[i:i + chars], is_tail) for i in range(0, len(stream) - chars + 1, chars)]
    if len(pieces) < n:
        raise GenreError(f"{work.name} has {len(pieces)} passages of {chars} characters, {n} asked")
    chosen = np.linspace(0, len(pieces) - 1, n).round().astype(int)
    return [Passage(work.name, label, pieces[i][0], pieces[i][1]) for i in chosen]


def genre_passages(corpus: Corpus, *, n: int = PASSAGES_PER_PLAY, chars: int = PASSAGE_CHARS) -> list[Passage]:
    """The labelled passages of every comedy and tragedy, play by play in the corpus's order."""
    names = proper_names(corpus)
    return [passage for play, label in labelled_plays(corpus).items()
            for passage in play_passages(corpus[play], label, names, n=n, chars=chars)]


def play_folds(plays: dict[str, str], n_folds: int = N_FOLDS, seed: int = 0) -> list[list[str]]:
    """Plays dealt into ``n_folds`` test folds, each genre spread evenly (a shuffled round robin)."""
    if not 2 <= n_folds <= min(collections.Counter(plays.values()).values()):
        raise GenreError(f"n_folds must be from 2 to the number of plays of the rarer genre, got {n_folds}")
    rng = random.Random(seed)
    folds = [[] for _ in range(n_folds)]
    offset = 0
    for label in LABELS:
        names = sorted(play for play, genre in plays.items() if genre == label)
        rng.shuffle(names)
        for i, play in enumerate(names):
            folds[(offset + i) % n_folds].append(play)
        offset += len(names)  # the next genre starts where this one stopped, so fold sizes stay even
    return folds


def balanced_accuracy(labels, predictions) -> float:
    """The mean over classes of the share of that class's items predicted right (0.5 for a constant guess)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if len(labels) != len(predictions) or len(labels) == 0:
        raise GenreError(f"need as many predictions as labels, and some: {len(predictions)} vs {len(labels)}")
    return float(np.mean([np.mean(predictions[labels == c] == c) for c in np.unique(labels)]))


def bootstrap_by_play(plays, labels, correct, *, reps: int = 2000, seed: int = 0, other=None):
    """95% interval of balanced accuracy, resampling whole plays within each genre.

    ``correct`` is one 0/1 per passage; with ``other`` (another method's ``correct`` on the same
    passages) the interval is that of the difference, ``correct`` minus ``other``.
    """
    plays, labels = np.asarray(plays), np.asarray(labels)
    values = np.asarray(correct, float) - (0 if other is None else np.asarray(other, float))
    by_class = {}
    for label in np.unique(labels):
        names = sorted(set(plays[labels == label]))
        sums = np.array([values[plays == name].sum() for name in names])
        counts = np.array([(plays == name).sum() for name in names])
        by_class[label] = (sums, counts)
    rng = np.random.default_rng(seed)
    draws = np.zeros(reps)
    for sums, counts in by_class.values():
        pick = rng.integers(0, len(sums), size=(reps, len(sums)))
        draws += sums[pick].sum(1) / counts[pick].sum(1)
    draws /= len(by_class)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


# --- Naive Bayes ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def words(text: str) -> tuple[str, ...]:
    return tuple(word.lower() for word in _WORD.findall(text) if word != NAME_MASK)


class NaiveBayes:
    """Multinomial Naive Bayes on word counts, add-``alpha`` (Laplace) smoothing, equal class priors.

    The priors are equal because the metric, balanced accuracy, weighs the two classes equally.
    """

    def __init__(self, alpha: float = 1.0):
        if not alpha > 0:
            raise GenreError(f"alpha must be positive, got {alpha}")
        self.alpha = alpha

    def fit(self, texts: list[str], labels: list[str]) -> "NaiveBayes":
        self.classes = sorted(set(labels))
        vocabulary = sorted({word for text in texts for word in words(text)})
        self.index = {word: i for i, word in enumerate(vocabulary)}
        counts = np.zeros((len(self.classes), len(vocabulary)))
        for text, label in zip(texts, labels):
            row = self.classes.index(label)
            for word in words(text):
                counts[row, self.index[word]] += 1
        smoothed = counts + self.alpha
        self.log_likelihood = np.log(smoothed / smoothed.sum(1, keepdims=True))
        self.counts = counts
        return self

    def scores(self, texts: list[str]) -> np.ndarray:
        """Log-likelihood of each text under each class, shape (len(texts), classes); unseen words ignored."""
        out = np.zeros((len(texts), len(self.classes)))
        for i, text in enumerate(texts):
            ids = [self.index[word] for word in words(text) if word in self.index]
            out[i] = self.log_likelihood[:, ids].sum(1)
        return out

    def predict(self, texts: list[str]) -> list[str]:
        return [self.classes[i] for i in self.scores(texts).argmax(1)]

    def top_words(self, label: str, k: int = 15, min_count: int = 20) -> list[str]:
        """The ``k`` words (seen ``min_count`` times or more) with the highest log-ratio in favour of ``label``."""
        row = self.classes.index(label)
        ratio = self.log_likelihood[row] - np.delete(self.log_likelihood, row, axis=0).max(0)
        ratio[self.counts.sum(0) < min_count] = -np.inf
        vocabulary = list(self.index)
        return [vocabulary[i] for i in np.argsort(-ratio)[:k]]


def word_counts(texts: list[str]) -> np.ndarray:
    """Word counts of each text, (texts, vocabulary of all ``texts``), for :func:`naive_bayes_log_odds`."""
    index = {}
    rows = [[index.setdefault(word, len(index)) for word in words(text)] for text in texts]
    counts = np.zeros((len(texts), len(index)), dtype=np.float32)
    for i, row in enumerate(rows):
        np.add.at(counts[i], row, 1)
    return counts


def naive_bayes_log_odds(counts: np.ndarray, labels, fit_idx, score_idx, alpha: float) -> np.ndarray:
    """log p(text | tragedy) - log p(text | comedy) of :class:`NaiveBayes` fitted on rows ``fit_idx``,
    for rows ``score_idx`` (the same numbers as ``NaiveBayes(alpha).fit(...).scores(...)``: only
    words seen in the fitted rows count)."""
    fit_idx, score_idx = list(fit_idx), list(score_idx)
    labels = np.asarray(labels)[fit_idx]
    seen = counts[fit_idx].sum(0) > 0
    loglik = []
    for label in LABELS:
        rows = [i for i, y in zip(fit_idx, labels) if y == label]
        class_counts = counts[rows][:, seen].sum(0).astype(float)
        smoothed = class_counts + alpha
        loglik.append(np.log(smoothed / smoothed.sum()))
    return counts[score_idx][:, seen].astype(float) @ (loglik[1] - loglik[0])


def cross_fitted_log_odds(counts: np.ndarray, labels, plays, fit_idx, alpha: float,
                          groups: int = 4) -> np.ndarray:
    """Naive Bayes log-odds of the rows ``fit_idx``, each from a model that never saw its play.

    The plays of ``fit_idx`` are dealt into ``groups`` (by :func:`play_folds`), and each group is scored
    by a Naive Bayes fitted on the others, so that a head learning from these numbers sees them as
    they will be on plays it has never seen.
    """
    fit_idx = list(fit_idx)
    fit_plays = {plays[i]: labels[i] for i in fit_idx}
    groups = min(groups, *collections.Counter(fit_plays.values()).values())
    out = np.zeros(len(fit_idx))
    for group in play_folds(fit_plays, groups, seed=2):
        held = set(group)
        rows = [k for k, i in enumerate(fit_idx) if plays[i] in held]
        others = [i for i in fit_idx if plays[i] not in held]
        out[rows] = naive_bayes_log_odds(counts, labels, others, [fit_idx[k] for k in rows], alpha)
    return out


# --- the GPT as a classifier ------------------------------------------------------------------------

def encode_passages(tokenizer, texts: list[str], window: int) -> torch.Tensor:
    """Token ids of each passage cut into windows of ``window`` characters: (passages, windows, window)."""
    ids = []
    for text in texts:
        if len(text) % window:
            raise GenreError(f"a passage of {len(text)} characters is not a whole number of {window}-character "
                             "windows")
        ids.append(tokenizer.encode(text))
    return torch.tensor(ids, dtype=torch.long).view(len(texts), -1, window)


POOLINGS = ("mean", "last")


@torch.no_grad()
def gpt_features(model, tokenizer, texts: list[str], *, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """The model's final hidden states (after its last layer norm) pooled over each passage.

    ``"mean"``: averaged over every position of every window; ``"last"``: the state at each
    window's last character (which has read the whole window), averaged over the windows.
    Each is (passages, d_model), float32. ``"layers"`` holds every block's output (the residual
    stream, before the final layer norm) mean-pooled the same way: (passages, n_layer, d_model).
    Runs without a graph, in bfloat16 on the CPU; states are pooled batch by batch.
    """
    ids = encode_passages(tokenizer, texts, model.config.context_length)
    n, windows, length = ids.shape
    flat = ids.view(-1, length)
    was_training = model.training
    model.eval()
    means, lasts, layers = [], [], []
    positions = torch.arange(length)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(flat), batch_size):
            x = model.token_embedding(flat[start:start + batch_size]) + model.position_embedding(positions)
            per_layer = []
            for block in model.blocks:
                x = block(x)
                per_layer.append(x.float().mean(1))
            final = model.ln_f(x).float()
            means.append(final.mean(1))
            lasts.append(final[:, -1])
            layers.append(torch.stack(per_layer, 1))
    model.train(was_training)
    mean = torch.cat(means).view(n, windows, -1).mean(1)
    last = torch.cat(lasts).view(n, windows, -1).mean(1)
    stacked = torch.cat(layers).view(n, windows, len(model.blocks), -1).mean(1)
    return {"mean": mean, "last": last, "layers": stacked}


def feature_sets(features: dict[str, torch.Tensor]) -> tuple[str, ...]:
    """The poolings :func:`pooled` can build from ``features`` (a cache without per-layer states has two)."""
    if "layers" not in features:
        return POOLINGS
    n_layer = features["layers"].shape[1]
    return POOLINGS + tuple(f"block {k}" for k in range(1, n_layer)) + ("all blocks",)


def pooled(features: dict[str, torch.Tensor], pooling: str) -> torch.Tensor:
    """One pooling of :func:`gpt_features`' output.

    ``"mean"``, ``"last"``, ``"block k"`` (block ``k``'s output, mean-pooled, counting from 1) or
    ``"all blocks"`` (every block's mean-pooled output side by side).
    """
    if pooling in POOLINGS:
        return features[pooling]
    if pooling == "all blocks":
        return features["layers"].flatten(1)
    match = re.fullmatch(r"block (\d+)", pooling)
    if match and "layers" in features and 1 <= int(match[1]) <= features["layers"].shape[1]:
        return features["layers"][:, int(match[1]) - 1]
    raise GenreError(f"unknown pooling {pooling!r}; these exist: {', '.join(feature_sets(features))}")


@dataclasses.dataclass
class LinearHead:
    """A logistic-regression head on standardised features: p(tragedy) = sigmoid(w . (x - mu) / sd + b)."""

    mean: torch.Tensor
    scale: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.mean) / self.scale) @ self.weight + self.bias

    def predict(self, features: torch.Tensor) -> list[str]:
        return [LABELS[int(z > 0)] for z in self.logits(features)]


def fit_head(features: torch.Tensor, labels: list[str], weight_decay: float, *, steps: int = 200) -> LinearHead:
    """Fit the head by L-BFGS on the class-balanced logistic loss plus ``weight_decay`` times |w|^2."""
    y = torch.tensor([LABELS.index(label) for label in labels], dtype=torch.float32)
    if len(set(y.tolist())) < 2:
        raise GenreError("the head needs passages of both genres to learn from")
    mean, scale = features.mean(0), features.std(0) + 1e-6
    x = (features - mean) / scale
    balance = torch.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (balance * torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y,
                                                                               reduction="none")).mean()
        loss = loss + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return LinearHead(mean, scale, weight.detach(), bias.detach())


# --- the GPT fine-tuned as a classifier (GPT-1's recipe) ------------------------------------------

class GenreClassifier(torch.nn.Module):
    """A GPT with a linear head on its final hidden states, trained whole (Radford et al. 2018).

    A window's tragedy logit is ``head(pool(ln_f(states)))``: the final states (after the last
    layer norm) averaged over the window's positions (``"mean"``) or the last position's
    (``"last"``, GPT-1's choice). The language-model logits come out too, for the auxiliary loss.
    The head starts at zero, so every window starts at p(tragedy) = 0.5.
    """

    def __init__(self, model, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise GenreError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.gpt = model
        self.pooling = pooling
        self.head = torch.nn.Linear(model.config.d_model, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor, *, language_model: bool = False):
        """Tragedy logits of windows ``ids`` (batch, window): (batch,), and the next-character logits
        (batch, window, vocabulary) when ``language_model``, else None."""
        gpt = self.gpt
        gpt.check_input(ids)
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = gpt.drop(gpt.token_embedding(ids) + gpt.position_embedding(positions))
        for block in gpt.blocks:
            x = block(x)
        states = gpt.ln_f(x)
        pooled = states.mean(1) if self.pooling == "mean" else states[:, -1]
        return self.head(pooled).squeeze(-1), (gpt.lm_head(states) if language_model else None)


@torch.no_grad()
def passage_logits(classifier: GenreClassifier, ids: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Each passage's tragedy logit, the mean of its windows' logits; ``ids`` is (passages, windows, window)."""
    n, windows, length = ids.shape
    flat = ids.reshape(-1, length)
    was_training = classifier.training
    classifier.eval()
    out = []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(flat), batch_size):
            out.append(classifier(flat[start:start + batch_size])[0].float())
    classifier.train(was_training)
    return torch.cat(out).view(n, windows).mean(1)


def logit_predictions(logits) -> list[str]:
    return [LABELS[int(z > 0)] for z in logits]


def fine_tune(classifier: GenreClassifier, ids: torch.Tensor, labels: list[str], *, epochs: int = 3,
              lr: float = 1e-4, batch_size: int = 16, lm_weight: float = 0.5, weight_decay: float = 0.01,
              warmup: float = 0.05, evals_per_epoch: int = 1, validate=None, seed: int = 0,
              log=None) -> list[dict]:
    """Train the whole ``classifier`` on the windows of passages ``ids`` (passages, windows, window).

    Every window carries its passage's label. The loss is the class-balanced logistic loss of the
    window's logit plus ``lm_weight`` times the next-character cross-entropy (GPT-1's auxiliary
    language-model loss; 0 turns it off). AdamW, the learning rate rising linearly over the first
    ``warmup`` share of the steps and falling linearly to zero at the end of ``epochs``; gradients
    clipped to norm 1; matrix products in bfloat16 (autocast) on the CPU.

    ``validate(classifier)`` (called ``evals_per_epoch`` times an epoch) returns a dict with a
    ``"score"`` (higher is better); the classifier is left with the weights of the first
    evaluation that scored best (early stopping). Returns one dict per evaluation: epoch, step,
    the mean training losses since the last one, and what ``validate`` returned.
    """
    if epochs < 1 or evals_per_epoch < 1 or not lr > 0:
        raise GenreError(f"need epochs >= 1, evals_per_epoch >= 1 and lr > 0; got {epochs}, "
                         f"{evals_per_epoch}, {lr}")
    y = torch.tensor([LABELS.index(label) for label in labels], dtype=torch.float32)
    if len(set(y.tolist())) < 2 or len(y) != len(ids):
        raise GenreError("fine-tuning needs one label a passage, and passages of both genres")
    n, windows, length = ids.shape
    flat = ids.reshape(-1, length)
    window_y = y.repeat_interleave(windows)
    balance = torch.where(window_y == 1, 0.5 / window_y.mean(), 0.5 / (1 - window_y.mean()))
    steps_per_epoch = -(-len(flat) // batch_size)
    total = epochs * steps_per_epoch
    warmup_steps = max(1, round(warmup * total))
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup_steps, max(0.0, (total - step) / (total - warmup_steps))))
    eval_every = max(1, steps_per_epoch // evals_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    history, best, best_state = [], None, None
    sums = {"classification": 0.0, "language_model": 0.0, "steps": 0}
    classifier.train()
    step = 0
    for epoch in range(epochs):
        order = torch.randperm(len(flat), generator=generator)
        for k in range(steps_per_epoch):
            batch = order[k * batch_size:(k + 1) * batch_size]
            x = flat[batch]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits, lm_logits = classifier(x, language_model=lm_weight > 0)
            logits = logits.float()
            loss = (balance[batch] * torch.nn.functional.binary_cross_entropy_with_logits(
                logits, window_y[batch], reduction="none")).mean()
            sums["classification"] += float(loss.detach())
            if lm_weight > 0:
                lm_loss = torch.nn.functional.cross_entropy(lm_logits[:, :-1].float().reshape(-1, lm_logits.shape[-1]),
                                                            x[:, 1:].reshape(-1))
                sums["language_model"] += float(lm_loss.detach())
                loss = loss + lm_weight * lm_loss
            sums["steps"] += 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(classifier.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            # evals_per_epoch evaluations an epoch, the last at its end
            if k == steps_per_epoch - 1 or ((k + 1) % eval_every == 0 and (k + 1) // eval_every < evals_per_epoch):
                point = {"epoch": round(epoch + (k + 1) / steps_per_epoch, 3), "step": step,
                         "train_classification_loss": round(sums["classification"] / sums["steps"], 4),
                         "train_lm_loss": round(sums["language_model"] / sums["steps"], 4) if lm_weight > 0
                         else None}
                sums = {"classification": 0.0, "language_model": 0.0, "steps": 0}
                if validate is not None:
                    point.update(validate(classifier))
                    classifier.train()
                    if best is None or point["score"] > best:
                        best = point["score"]
                        best_state = {key: value.detach().clone() for key, value in classifier.state_dict().items()}
                history.append(point)
                if log:
                    log(point)
    if best_state is not None:
        classifier.load_state_dict(best_state)
    return history


# --- the shipped classifier and what the chapter shows ----------------------------------------------

def save_head(head: LinearHead, pooling: str, metadata: dict, directory=MODEL_DIR) -> pathlib.Path:
    """Write the head (bfloat16 safetensors, a few kilobytes) with the settings needed to use it."""
    from safetensors.torch import save_file

    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(head, name).to(torch.bfloat16).contiguous() for name in ("mean", "scale", "weight")}
    tensors["bias"] = head.bias.reshape(1).to(torch.bfloat16)
    save_file(tensors, str(directory / "head.safetensors"))
    (directory / "head.json").write_text(json.dumps(dict(metadata, pooling=pooling), indent=1) + "\n",
                                         encoding="utf-8")
    return directory


def load_head(directory=MODEL_DIR) -> tuple[LinearHead, dict]:
    """The shipped head and its settings (pooling, base model, the plays it was trained and tested on)."""
    from safetensors.torch import load_file

    directory = pathlib.Path(directory)
    try:
        tensors = load_file(str(directory / "head.safetensors"))
        metadata = json.loads((directory / "head.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise GenreError(f"no genre classifier in {directory} ({error}); run python -m book.experiments.genre") \
            from None
    tensors = {name: tensor.float() for name, tensor in tensors.items()}
    head = LinearHead(tensors["mean"], tensors["scale"], tensors["weight"], tensors["bias"][0])
    return head, metadata


def genre_results() -> dict:
    return read_results("sentiment")


def genre_table():
    """The results file's rows: task, method, balanced accuracy, its 95% interval, passages, baseline or not.

    A pandas DataFrame where pandas is installed, otherwise the list of row dictionaries.
    """
    rows = genre_results()["results"]
    table = [{"task": row["task"], "method": row["method"], "balanced accuracy": row["value"],
              "95% interval": f"{row['ci95'][0]:.3f}-{row['ci95'][1]:.3f}" if row["ci95"] else "",
              "passages": row["n"], "baseline": row["is_baseline"]} for row in rows]
    try:
        import pandas as pd
    except ImportError:
        return table
    return pd.DataFrame(table)


def genre_words(k: int = 12) -> dict[str, list[str]]:
    """The words Naive Bayes (trained on every labelled play) finds most comic and most tragic."""
    found = genre_results()["naive_bayes_words"]
    return {label: found[label][:k] for label in LABELS}


def demo(n_per_genre: int = 2, *, checkpoint_dir=None, head_dir=MODEL_DIR) -> list[dict]:
    """Classify passages of the shipped head's test plays (it never saw them labelled) in a few seconds.

    The passages are those stored with the head, read by the base model named there (or by
    ``checkpoint_dir``). Returns one dict per passage: play, true genre, predicted genre, the
    probability of tragedy, and the passage's opening.
    """
    from book.checkpoint import load_checkpoint

    if n_per_genre < 1:
        raise GenreError(f"n_per_genre must be at least 1, got {n_per_genre}")
    head, metadata = load_head(head_dir)
    picked = [[p for p in metadata["demo_passages"] if p["genre"] == label][:n_per_genre] for label in LABELS]
    picked = [p for group in picked for p in group]
    if checkpoint_dir is None:
        checkpoint_dir = CHECKPOINTS / pathlib.Path(metadata.get("base_model", "shakespeare-char")).name
    checkpoint = load_checkpoint(checkpoint_dir)
    features = gpt_features(checkpoint.model, checkpoint.tokenizer, [p["text"] for p in picked])
    probabilities = torch.sigmoid(head.logits(pooled(features, metadata["pooling"])))
    return [{"play": p["play"], "genre": p["genre"], "predicted": LABELS[int(q > 0.5)],
             "p_tragedy": round(float(q), 3), "opening": p["text"][:100]} for p, q in zip(picked, probabilities)]


def interval_text(interval) -> str:
    return f"[{interval[0]:.2f}, {interval[1]:.2f}]" if interval else ""


def fraction_masked(texts: list[str]) -> float:
    """Share of words replaced by the mask, across ``texts``."""
    found = [word for text in texts for word in _WORD.findall(text)]
    return sum(word == NAME_MASK for word in found) / max(1, len(found))


__all__ = ["FOLIO_GENRES", "EXCLUDED", "LABELS", "Passage", "labelled_plays", "proper_names", "clean_speech",
           "genre_passages", "play_folds", "balanced_accuracy", "bootstrap_by_play", "NaiveBayes",
           "gpt_features", "feature_sets", "pooled", "word_counts", "naive_bayes_log_odds",
           "cross_fitted_log_odds", "LinearHead", "fit_head", "GenreClassifier", "passage_logits",
           "logit_predictions", "fine_tune", "save_head", "load_head", "genre_table",
           "genre_words",
           "demo"]
