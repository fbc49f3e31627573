"""Generate text with a trained GPT: greedy decoding or sampling (temperature, top-k, top-p).

    python -m book.generate --checkpoint checkpoints/shakespeare-char --prompt "ROMEO:" --seed 0
    python -m book.generate --checkpoint checkpoints/shakespeare-char --prompt "To be" --greedy

The names follow Hugging Face's ``generate``: ``max_length`` counts the prompt too,
``max_new_tokens`` only what is added; ``do_sample=False`` is greedy decoding (always the most
likely next token), ``do_sample=True`` draws the next token from the model's distribution,
reshaped by ``temperature``, ``top_k`` and ``top_p``.
"""
from __future__ import annotations

import book.cpu  # noqa: F401  (before PyTorch: OpenMP reads its settings once, when it loads)

# isort: split
import argparse
import math
import sys

import torch
from torch.nn import functional as F

from book.errors import BookError, CommandParser
from book.model import GPT, ModelError


class GenerationError(BookError):
    """Generation settings that make no sense (a negative temperature, top_p above one...)."""


def filter_logits(logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set the logits of the tokens that may not be drawn to -inf.

    ``top_k`` keeps the k most likely tokens. ``top_p`` (nucleus sampling) keeps the smallest
    set of most likely tokens whose probabilities add up to at least ``top_p``.
    Both act on the last dimension; the most likely token always survives.
    """
    if top_k is not None:
        if top_k <= 0:
            raise GenerationError(f"top_k must be a positive integer, got {top_k}")
        kth_largest = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None:
        if not (math.isfinite(top_p) and 0 < top_p <= 1):
            raise GenerationError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p.
        mass_before = probs.cumsum(dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(logits: torch.Tensor, *, do_sample: bool = True, temperature: float = 1.0,
               top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose the next token from the last position's logits (B, vocab): ids of shape (B, 1)."""
    if not do_sample:
        return logits.argmax(dim=-1, keepdim=True)
    if not math.isfinite(temperature):
        raise GenerationError(f"temperature must be a finite number, got {temperature}")
    if temperature <= 0:
        raise GenerationError(f"temperature must be positive when sampling, got {temperature} "
                              "(for the most likely token, use greedy decoding)")
    logits = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def generate(model: GPT, idx: torch.Tensor, *, max_new_tokens: int | None = None, max_length: int | None = None,
             do_sample: bool = True, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, generator: torch.Generator | None = None,
             use_cache: bool = True, on_token=None) -> torch.Tensor:
    """Extend the token ids ``idx`` (B, T) (or (T,)) and return prompt plus continuation.

    Give either ``max_new_tokens`` or ``max_length`` (prompt included). With ``use_cache``,
    each step feeds only the newest token and reuses the cached keys and values. The model's
    positions stop at its context length; when the text outgrows it, the cached run keeps the
    latest half of the context, recomputes it once, and carries on (the uncached run instead
    re-reads the latest full context at every step, so long outputs of the two may differ).
    ``on_token``, if given, is called with each new token's ids (B, 1) as soon as it is drawn,
    for streaming the text as it is produced.
    """
    single = idx.dim() == 1
    if single:
        idx = idx[None]
    if idx.shape[1] == 0:
        raise GenerationError("the prompt is empty: give at least one token")
    if (max_new_tokens is None) == (max_length is None):
        raise GenerationError("give exactly one of max_new_tokens and max_length")
    if max_length is not None:
        max_new_tokens = max_length - idx.shape[1]
    if max_new_tokens < 0:
        raise GenerationError(f"max_length {max_length} is shorter than the prompt ({idx.shape[1]} tokens)")
    was_training = model.training
    model.eval()
    # inference_mode skips autograd's bookkeeping entirely, which matters when each step is tiny.
    with torch.inference_mode():
        options = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
        context = model.config.context_length
        cache = model.new_cache(idx.shape[0]) if use_cache else None
        pending = idx[:, -context:]  # the tokens the model has not read yet
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = model(idx[:, -context:])
            else:
                if cache.length + pending.shape[1] > context:
                    cache.reset()
                    pending = idx[:, -(context // 2):]
                logits, _ = model(pending, cache=cache)
            token = next_token(logits[:, -1], **options)
            idx = torch.cat([idx, token], dim=1)
            pending = token
            if on_token is not None:
                on_token(token)
    model.train(was_training)
    idx = idx.clone()  # outside inference mode: an ordinary tensor the caller may train on
    return idx[0] if single else idx


def complete(model: GPT, tokenizer, prompt: str, **options) -> str:
    """The prompt followed by its continuation, as text."""
    ids = torch.tensor(tokenizer.encode(prompt), dtype=torch.long, device=model.token_embedding.weight.device)
    return tokenizer.decode(generate(model, ids, **options).tolist())


def parse_args(argv=None) -> argparse.Namespace:
    parser = CommandParser(prog="python -m book.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="folder written by python -m book.train")
    parser.add_argument("--prompt", required=True, help="the text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="characters to add (default 200)")
    parser.add_argument("--greedy", action="store_true", help="always take the most likely next token")
    parser.add_argument("--temperature", type=float, default=1.0, help="below 1: safer, above 1: wilder")
    parser.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    parser.add_argument("--top-p", type=float, help="sample among the most likely tokens holding this much probability")
    parser.add_argument("--seed", type=int, default=0, help="random seed for sampling (default 0)")
    parser.add_argument("--no-cache", action="store_true", help="recompute every position at each step")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps, where available")
    return parser.parse_args(argv)


MAX_NEW_TOKENS = 100_000  # a long book chapter; beyond that, generate in a loop of your own
MAX_SEED = 2**63 - 1


def check_settings(args: argparse.Namespace) -> None:
    """Refuse settings that make no sense before the checkpoint is read or anything is printed."""
    if not 0 <= args.max_new_tokens <= MAX_NEW_TOKENS:
        raise GenerationError(f"--max-new-tokens must be between 0 and {MAX_NEW_TOKENS:,}, got {args.max_new_tokens}")
    if not args.greedy and not (math.isfinite(args.temperature) and args.temperature > 0):
        raise GenerationError(f"--temperature must be a positive finite number, got {args.temperature}")
    if args.top_k is not None and args.top_k <= 0:
        raise GenerationError(f"--top-k must be a positive integer, got {args.top_k}")
    if args.top_p is not None and not (math.isfinite(args.top_p) and 0 < args.top_p <= 1):
        raise GenerationError(f"--top-p must be in (0, 1], got {args.top_p}")
    if not 0 <= args.seed <= MAX_SEED:
        raise GenerationError(f"--seed must be between 0 and {MAX_SEED}, got {args.seed}")
    if not args.prompt:
        raise GenerationError("the prompt is empty: give at least one character")


def main(argv=None) -> int:
    from book.checkpoint import CheckpointError, load_checkpoint
    from book.distributed import DistributedError, resolve_device
    from book.tokenize import UnknownCharacterError

    args = parse_args(argv)
    threads = book.cpu.generation_threads()
    if threads is not None:  # one token at a time: operations too small to share between threads
        torch.set_num_threads(threads)
    try:
        check_settings(args)
        device = resolve_device(args.device)
        checkpoint = load_checkpoint(args.checkpoint, device=device)
        try:
            checkpoint.tokenizer.encode(args.prompt)
        except UnknownCharacterError as error:
            raise GenerationError(f"the prompt cannot be read by this model: {error}") from None
        generator = torch.Generator(device=device).manual_seed(args.seed)
        tokenizer = checkpoint.tokenizer
        prompt = torch.tensor(tokenizer.encode(args.prompt), dtype=torch.long, device=device)
        print(args.prompt, end="", flush=True)  # then each character as soon as it is drawn

        def stream(token):
            print(tokenizer.decode(token[0].tolist()), end="", flush=True)

        generate(checkpoint.model, prompt, max_new_tokens=args.max_new_tokens, do_sample=not args.greedy,
                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, generator=generator,
                 use_cache=not args.no_cache, on_token=stream)
    except (CheckpointError, GenerationError, ModelError, DistributedError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
