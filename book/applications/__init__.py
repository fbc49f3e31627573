"""The language model put to work on small tasks with a metric (Chapter 8), and its challenges measured (Chapter 9).

Every figure is scored against a reference that is known exactly, beside a baseline. One module
per application, each with its task, its baselines and a ``demo`` the chapter runs live:

* :mod:`~book.applications.generation`: held-out loss against a counted n-gram, and the form of
  sampled verse (with :mod:`~book.applications.form`: syllables and rhyme);
* :mod:`~book.applications.number_translation`: number words in many languages, from ``num2words``;
* :mod:`~book.applications.qa`: bAbI-style stories with one and two supporting facts;
* :mod:`~book.applications.genre`: comedy or tragedy of a passage, plays held out whole;
* :mod:`~book.applications.conversation`: next-speech selection by PMI, and booking replies;
* :mod:`~book.applications.code_tasks` and :mod:`~book.applications.codegen`: functions scored by
  running their unit tests in :mod:`~book.applications.sandbox`, and line completion;
* :mod:`~book.applications.results`: one results file per application, with 95% intervals.

Shared pieces and Chapter 9's measures:

* :mod:`~book.applications.scoring`: log-probabilities of continuations, greedy continuations,
  exact match and similarity, the held-out part of a work;
* :mod:`~book.applications.finetuning`: a few AdamW steps on a small text;
* :mod:`~book.applications.verbatim`: memorisation, how far greedy decoding reproduces a
  training text compared with held-out text;
* :mod:`~book.applications.bias`: the model's preference for a word after "He is" against
  "She is", next to the same ratio counted in the corpus;
* :mod:`~book.applications.compute`: parameters and forward FLOPs per token by formula.

The commands that train the models and write the shipped results live in :mod:`book.experiments`;
``python -m book.applications`` prints every result. The shared pieces' names are gathered here, so
a chapter can write ``from book import applications as apps`` and ``apps.exact_match``.
"""
from book.applications.bias import ProbeRow, bias_probe, pearson, phrase_counts
from book.applications.compute import compute_costs
from book.applications.finetuning import finetune, shuffled_text_ids
from book.applications.form import form_metrics, rhymes, sonnets, syllables
from book.applications.scoring import (
                                       SHIPPED_CHECKPOINT,
                                       common_prefix_length,
                                       continuation_logprobs,
                                       exact_match,
                                       greedy_continuations,
                                       heldout_part,
                                       similarity,
)
from book.applications.verbatim import exact_match_rates, memorisation, sample_passages
from book.tasks import TaskError

__all__ = [
    "SHIPPED_CHECKPOINT", "ProbeRow", "TaskError",
    "bias_probe", "common_prefix_length", "compute_costs", "continuation_logprobs", "exact_match",
    "exact_match_rates", "finetune", "form_metrics", "greedy_continuations", "heldout_part", "memorisation",
    "pearson", "phrase_counts", "rhymes", "sample_passages", "shuffled_text_ids", "similarity", "sonnets",
    "syllables",
]
