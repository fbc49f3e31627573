"""Hugging Face interop: a book checkpoint as a ``transformers`` GPT-2 model, and back.

    python -m book.hf export --checkpoint checkpoints/shakespeare-char --out /tmp/hf-shakespeare

    >>> from transformers import GPT2LMHeadModel
    >>> model = from_gpt2(GPT2LMHeadModel.from_pretrained(folder))   # any GPT-2, into book.model

The book's GPT is GPT-2's architecture at a smaller size: learned positions, pre-LayerNorm
blocks, an MLP four times wider with GELU, a final LayerNorm and an output layer tied to the
token embedding. So the export is a renaming of weights, with three details:

* GPT-2 stores its linear layers as ``Conv1D`` modules whose weight is ``(in, out)``, the
  transpose of ``nn.Linear``'s ``(out, in)``;
* GPT-2 always has biases; a model trained with ``bias=False`` exports zero biases;
* the book's models use the exact GELU, which ``transformers`` calls ``"gelu"``; GPT-2's own
  ``"gelu_new"`` is the tanh approximation, which ``GPTConfig(activation="gelu_new")`` selects,
  so that an imported GPT-2 computes exactly what it computed in ``transformers``.

The tokenizer is a ``tokenizers`` BPE model with one token per character and no merges, saved as
a ``PreTrainedTokenizerFast``: the folder then loads with ``AutoTokenizer`` and
``pipeline('text-generation', model=folder)``, offline, like any model on the Hub. A character
outside the book's vocabulary is an error (``tokenizers`` raises ``Unk token `<a character outside
the book's vocabulary>` not found in the vocabulary``), never dropped in silence: the model has no
id for it. Check such text with the book's tokenizer, which names the characters.

The context. The model has ``n_positions`` learned positions (the book's ``context_length``) and,
unlike ``book.generate``, ``transformers`` does not slide a window over a longer text: position
``n_positions`` does not exist, and a forward pass that reaches it fails inside the position
embedding with ``IndexError: index out of range in self``. The export writes
``max_length = n_positions`` into ``generation_config.json``, so a call that does not ask for a
length stops at the context (and a prompt that fills it is a ``ValueError`` naming it), instead
of the pipeline's default of 256 new tokens. An explicit ``max_new_tokens`` or ``max_length``
takes precedence over that file (``transformers`` logs "Both `max_new_tokens` ... and
`max_length` ... seem to have been set"), and ``transformers`` only warns when it goes past
the context; so ask for at most ``n_positions`` tokens in all, or stop generation at the context
and cut long prompts to their end, as ``book.generate`` reads them::

    >>> generator = text_generation_pipeline(folder)   # stops at the context, cuts long prompts
    >>> generator(prompt, max_new_tokens=1000)          # text up to n_positions tokens in all
    >>> model.generate(ids[:, -(n - 1):], max_new_tokens=1000, stopping_criteria=stop_at_context(n))

which is ``pipeline('text-generation', model=folder, stopping_criteria=stop_at_context(n),
truncation=True, tokenizer_encode_kwargs={'max_length': n - 1})``; the exported tokenizer
truncates on the left, keeping the end of the prompt, which is what the model continues.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import torch

from book.errors import BookError, CommandParser
from book.model import ACTIVATIONS, GPT, GPTConfig
from book.paths import removed_on_failure, unwritable_reason
from book.tokenize import PRETOKEN_PATTERN, BPETokenizer, CharTokenizer


class ExportError(BookError):
    """The export cannot be done as asked (an occupied output folder, a missing checkpoint)."""


def gpt2_config(model: GPT):
    """The ``transformers.GPT2Config`` that describes ``model``'s architecture."""
    from transformers import GPT2Config

    config = model.config
    return GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.context_length, n_embd=config.d_model,
        n_layer=config.n_layer, n_head=config.n_head, n_inner=4 * config.d_model,
        activation_function=config.activation, layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True,
        # A character model has no end-of-text token: generation runs to the length asked for.
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )


def gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """``model``'s weights under GPT-2's names and layouts (``Conv1D`` weights transposed)."""
    weights = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    d = model.config.d_model

    def bias(name: str, size: int) -> torch.Tensor:
        return weights[name] if name in weights else torch.zeros(size)

    out = {
        "transformer.wte.weight": weights["token_embedding.weight"],
        "transformer.wpe.weight": weights["position_embedding.weight"],
        "transformer.ln_f.weight": weights["ln_f.weight"],
        "transformer.ln_f.bias": bias("ln_f.bias", d),
    }
    pairs = [("ln_1", "ln_1", False, d), ("attn.qkv", "attn.c_attn", True, 3 * d),
             ("attn.proj", "attn.c_proj", True, d), ("ln_2", "ln_2", False, d),
             ("mlp.fc", "mlp.c_fc", True, 4 * d), ("mlp.proj", "mlp.c_proj", True, d)]
    for layer in range(model.config.n_layer):
        for ours, theirs, transpose, size in pairs:
            weight = weights[f"blocks.{layer}.{ours}.weight"]
            out[f"transformer.h.{layer}.{theirs}.weight"] = weight.t() if transpose else weight
            out[f"transformer.h.{layer}.{theirs}.bias"] = bias(f"blocks.{layer}.{ours}.bias", size)
    return {name: tensor.contiguous().clone() for name, tensor in out.items()}


GPT2_PAIRS = [("ln_1", "ln_1", False), ("attn.qkv", "attn.c_attn", True), ("attn.proj", "attn.c_proj", True),
              ("ln_2", "ln_2", False), ("mlp.fc", "mlp.c_fc", True), ("mlp.proj", "mlp.c_proj", True)]


def from_gpt2(hf_model) -> GPT:
    """A book :class:`~book.model.GPT` computing the same function as a ``transformers`` GPT-2."""
    config = hf_model.config
    if config.model_type != "gpt2":
        raise ExportError(f"only GPT-2 models can be imported, not {config.model_type!r}")
    if config.activation_function not in ACTIVATIONS:
        raise ExportError(f"GPT-2 with activation {config.activation_function!r} cannot be imported; "
                          f"the book's model has {', '.join(ACTIVATIONS)}")
    if config.n_inner not in (None, 4 * config.n_embd):
        raise ExportError(f"the MLP is {config.n_inner} wide; the book's model is four times n_embd")
    if abs(config.layer_norm_epsilon - 1e-5) > 1e-12:
        raise ExportError(f"layer_norm_epsilon is {config.layer_norm_epsilon}; the book's LayerNorms use 1e-5")
    model = GPT(GPTConfig(vocab_size=config.vocab_size, context_length=config.n_positions, n_layer=config.n_layer,
                          n_head=config.n_head, d_model=config.n_embd, activation=config.activation_function))
    theirs = {name: tensor.detach() for name, tensor in hf_model.state_dict().items()}
    weights = {"token_embedding.weight": theirs["transformer.wte.weight"],
               "position_embedding.weight": theirs["transformer.wpe.weight"],
               "ln_f.weight": theirs["transformer.ln_f.weight"], "ln_f.bias": theirs["transformer.ln_f.bias"]}
    for layer in range(config.n_layer):
        for ours, name, transpose in GPT2_PAIRS:
            weight = theirs[f"transformer.h.{layer}.{name}.weight"]
            weights[f"blocks.{layer}.{ours}.weight"] = weight.t() if transpose else weight
            weights[f"blocks.{layer}.{ours}.bias"] = theirs[f"transformer.h.{layer}.{name}.bias"]
    missing, unexpected = model.load_state_dict({k: v.float().contiguous() for k, v in weights.items()},
                                                strict=False)
    if [name for name in missing if name != "lm_head.weight"] or unexpected:
        raise ExportError(f"GPT-2 weights do not map onto the book's model: missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]}")
    return model.eval()


def to_gpt2(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` computing the same function as ``model``."""
    from transformers import GPT2LMHeadModel

    hf_model = GPT2LMHeadModel(gpt2_config(model))
    missing, unexpected = hf_model.load_state_dict(gpt2_state_dict(model), strict=False)
    # lm_head.weight is tied to wte; anything else left unset would be a bug in the mapping.
    missing = [name for name in missing if name != "lm_head.weight"]
    if missing or unexpected:
        raise ExportError(f"weights do not map onto GPT-2: missing {missing[:3]}, unexpected {unexpected[:3]}")
    hf_model.tie_weights()
    hf_model.generation_config.do_sample = False  # greedy unless asked, like book.generate --greedy
    # Without a length of its own the pipeline asks for 256 new tokens, past a small context, and
    # GPT-2 then fails with an IndexError in its position embedding: stop at the context instead.
    hf_model.generation_config.max_length = model.config.context_length
    return hf_model.eval()


# The unknown token of the exported tokenizer; deliberately not in the vocabulary, so that
# ``tokenizers`` raises "Unk token `...` not found in the vocabulary" for a character outside it.
UNKNOWN_CHARACTER = "<a character outside the book's vocabulary>"


def stop_at_context(context_length: int):
    """A ``transformers`` stopping criterion that ends generation at ``context_length`` tokens.

    Pass it as ``stopping_criteria=`` to ``generate`` or to a text-generation pipeline: generation
    then stops once the sequence fills the model's positions, however many new tokens were asked
    for, instead of failing with an ``IndexError`` at position ``context_length``. The prompt
    itself must be shorter than the context (cut it to ``ids[:, -(context_length - 1):]``).
    """
    from transformers import StoppingCriteria, StoppingCriteriaList

    class ContextLimit(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            full = input_ids.shape[-1] >= context_length
            return torch.full((input_ids.shape[0],), full, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([ContextLimit()])


def text_generation_pipeline(folder, **kwargs):
    """``transformers.pipeline('text-generation', model=folder)`` that stays within the context.

    Generation stops at the model's ``n_positions`` tokens (prompt included) whatever length is
    asked for, and a longer prompt is cut to its last ``n_positions - 1`` tokens, as
    ``book.generate`` reads only the end of a long text; so at least one token is generated.
    ``kwargs`` go to ``transformers.pipeline``; a ``stopping_criteria`` passed there is kept.
    """
    from transformers import AutoConfig, pipeline

    context = AutoConfig.from_pretrained(str(folder)).n_positions
    if context < 2:
        raise ExportError(f"a context of {context} position leaves no room to generate")
    options = {"truncation": True, "tokenizer_encode_kwargs": {"max_length": context - 1}, **kwargs}
    options["stopping_criteria"] = [*kwargs.get("stopping_criteria", []), *stop_at_context(context)]
    return pipeline("text-generation", model=str(folder), **options)


def fast_tokenizer(tokenizer: CharTokenizer | BPETokenizer, context_length: int | None = None):
    """A ``PreTrainedTokenizerFast`` with the same ids as ``tokenizer`` (either of the book's two).

    A character tokenizer becomes a BPE model without merges, which cuts text into single
    characters; with no pre-tokenizer the whole text is one "word", so spaces and newlines are
    ordinary tokens. A BPE tokenizer keeps its merges, in the order learned, and its pre-tokens
    (the same regular expression splits the text first). The ``Fuse`` decoder joins tokens with
    nothing in between. A character outside the vocabulary is an error: the BPE model's unknown
    token, :data:`UNKNOWN_CHARACTER`, is not in the vocabulary, so ``tokenizers`` raises rather
    than drop the character in silence (which it does when there is no unknown token at all).
    The model has no id to give it, so an unknown token that encoded would only move the error
    into the embedding. Prompts longer than ``context_length`` are truncated on the left when
    truncation is asked for, keeping the end that the model continues.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if isinstance(tokenizer, CharTokenizer):
        vocab, merges = dict(tokenizer.char_to_id), []
    elif isinstance(tokenizer, BPETokenizer):
        vocab, merges = dict(tokenizer.vocab), [tuple(pair) for pair in tokenizer.merges]
    else:
        raise ExportError(f"cannot export a {type(tokenizer).__name__}; the book's tokenizers are CharTokenizer "
                          f"and BPETokenizer")
    if UNKNOWN_CHARACTER in vocab:
        raise ExportError(f"the vocabulary holds the token {UNKNOWN_CHARACTER!r}, which the export needs "
                          f"outside it to refuse unknown characters")
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNKNOWN_CHARACTER))
    if isinstance(tokenizer, BPETokenizer):
        core.pre_tokenizer = pre_tokenizers.Split(Regex(PRETOKEN_PATTERN), behavior="isolated")
    core.decoder = decoders.Fuse()
    limits = {} if context_length is None else {"model_max_length": context_length}
    return PreTrainedTokenizerFast(tokenizer_object=core, clean_up_tokenization_spaces=False, truncation_side="left",
                                   model_input_names=["input_ids", "attention_mask"], **limits)


def export(checkpoint_dir, out_dir, *, force: bool = False) -> pathlib.Path:
    """Write the checkpoint in ``checkpoint_dir`` as a Hugging Face model folder ``out_dir``."""
    from book.checkpoint import load_checkpoint

    out_dir = pathlib.Path(out_dir)
    if out_dir.resolve() == pathlib.Path(checkpoint_dir).resolve():
        raise ExportError(f"--out {out_dir} is the checkpoint itself; exporting there would overwrite the book's "
                          f"weights with the GPT-2 layout: choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(f"{out_dir} exists and is not empty; pass --force to overwrite it")
    with removed_on_failure(out_dir):  # a folder made by the check goes again if the checkpoint is bad
        reason = unwritable_reason(out_dir)
        if reason:
            raise ExportError(f"--out {out_dir} cannot be written ({reason})")
        checkpoint = load_checkpoint(checkpoint_dir)
        hf_model = to_gpt2(checkpoint.model)
        hf_tokenizer = fast_tokenizer(checkpoint.tokenizer, checkpoint.config.context_length)
    hf_model.save_pretrained(out_dir, safe_serialization=True)
    hf_tokenizer.save_pretrained(out_dir)
    return out_dir


def parse_args(argv=None) -> argparse.Namespace:
    parser = CommandParser(prog="python -m book.hf", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export_parser = commands.add_parser("export", help="write a checkpoint as a transformers GPT-2 folder")
    export_parser.add_argument("--checkpoint", required=True, help="folder written by python -m book.train")
    export_parser.add_argument("--out", required=True, help="the Hugging Face model folder to write")
    export_parser.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from book.checkpoint import CheckpointError

    args = parse_args(argv)
    try:
        out = export(args.checkpoint, args.out, force=args.force)
    except (CheckpointError, ExportError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} (load it with transformers.pipeline('text-generation', model={str(out)!r}))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
