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
``pipeline('text-generation', model=folder)``, offline, like any model on the Hub.
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
    return hf_model.eval()


def fast_tokenizer(tokenizer: CharTokenizer | BPETokenizer, context_length: int | None = None):
    """A ``PreTrainedTokenizerFast`` with the same ids as ``tokenizer`` (either of the book's two).

    A character tokenizer becomes a BPE model without merges, which cuts text into single
    characters; with no pre-tokenizer the whole text is one "word", so spaces and newlines are
    ordinary tokens. A BPE tokenizer keeps its merges, in the order learned, and its pre-tokens
    (the same regular expression splits the text first). The ``Fuse`` decoder joins tokens with
    nothing in between. Characters outside the vocabulary are dropped by ``tokenizers`` (there is
    no unknown token): check text with the book's tokenizer first.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if isinstance(tokenizer, CharTokenizer):
        core = Tokenizer(models.BPE(vocab=dict(tokenizer.char_to_id), merges=[]))
    elif isinstance(tokenizer, BPETokenizer):
        core = Tokenizer(models.BPE(vocab=dict(tokenizer.vocab), merges=[tuple(pair) for pair in tokenizer.merges]))
        core.pre_tokenizer = pre_tokenizers.Split(Regex(PRETOKEN_PATTERN), behavior="isolated")
    else:
        raise ExportError(f"cannot export a {type(tokenizer).__name__}; the book's tokenizers are CharTokenizer "
                          f"and BPETokenizer")
    core.decoder = decoders.Fuse()
    limits = {} if context_length is None else {"model_max_length": context_length}
    return PreTrainedTokenizerFast(tokenizer_object=core, clean_up_tokenization_spaces=False,
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
