"""Number-word translation (Chapter 7): a GPT trained from scratch, and MetaGPT with languages as tasks.

    python -m book.experiments.number_translation                # parts A and B, writes the results
    python -m book.experiments.number_translation --part A       # one part (the other's rows are kept)

writes ``checkpoints/applications/results/translation.json`` and the small bfloat16 checkpoints
of ``checkpoints/applications/translation-model/`` (``fr``: Part A; ``finetune`` and
``pretrain-maml``: Part B). The data, the split and the baseline are in
:mod:`book.applications.number_translation`. One thread; budgets are counted in CPU seconds of
this process (``time.process_time``), so that a shared machine slows a run down without
shortening it.

Part A: English -> French, 1..9,999. A GPT (3 layers, 128 dimensions, context 128) trained by
:func:`book.training.train` (passes over the training lines, bfloat16 matrix products) with the
loss on the French characters only. The step is chosen on the validation numbers (exact match of
greedy decoding at every evaluation of the engine, best kept); the test numbers are decoded once.

Part B: numbers 1..999 in 25 languages. Meta-training languages ``META_TRAIN``, validation
languages ``META_VAL`` (every step count and learning rate is chosen on them), test languages
``META_TEST``. The recipe of Chapter 6 (:mod:`book.experiments.metagpt`): one GPT is pretrained
on batches of meta-training languages (``finetune``: the whole budget); ``pretrain-maml`` is the
same run up to ``SWITCH`` of the budget, then second-order MAML (:mod:`book.maml`, one inner SGD
step of ``alpha`` on a language's 32 support pairs, the loss on 16 query pairs) for the rest of
the same budget; ``alpha`` is chosen on the validation languages at the switch. Each start then
adapts to a held-out language from K = 32 pairs (Adam or SGD, learning rate and step count chosen
on the validation languages); ``scratch`` is a fresh GPT trained on the 32 pairs alone;
``in-context`` puts as many of the 32 pairs as fit in the context before the question, no step.
Both trained starts get the same ``BUDGET`` of CPU seconds (the choice of ``alpha`` is not counted);
each record says whether its training loss had stopped moving (:func:`flatness`).
"""
from __future__ import annotations

import argparse
import copy
import math
import random
import sys
import time

import torch

from book import maml
from book.applications import number_translation as nt
from book.applications.results import Result, proportion, read_results, results_path, write_results
from book.checkpoint import save_checkpoint
from book.errors import CommandParser
from book.experiments.metagpt import LOG_EVERY, Log, schedule
from book.model import GPT, GPTConfig
from book.stats import LN2
from book.training import TrainConfig, make_optimizer, train

APPLICATION = "translation"

# Part A
A_MODEL = dict(context_length=128, n_layer=3, n_head=4, d_model=128)
A_TRAIN = dict(max_steps=1000, batch_size=16, context_length=128, max_lr=3e-3, min_lr=3e-4, warmup_steps=50,
               weight_decay=0.1, eval_interval=100, eval_iters=10, sampling="epochs", compute_dtype="bfloat16",
               seed=0)
VAL_SUBSET = 300          # validation numbers decoded at each of them (all 900 once at the end)

# Part B
B_MODEL = dict(context_length=256, n_layer=2, n_head=4, d_model=64)
META_VAL = ("pt", "da")
META_TEST = ("it", "nl", "sl")
META_TRAIN = tuple(code for code in nt.LANGUAGES if code not in META_VAL + META_TEST)
SHOTS = 32                # K: support pairs of a language
QUERIES = 16              # query pairs of a meta-training language per iteration
META_BATCH = 4            # languages per iteration
BUDGET = 1800.0           # CPU seconds of pretraining (finetune), and of pretraining + MAML (pretrain-maml)
FLAT_SHARE = 0.25         # a run is finished when its loss moved < FLAT_BITS over this share of its last stretch
FLAT_BITS = 0.02
FLAT_SPAN = 100           # iterations averaged at each end of that stretch
SWITCH = 0.5
ALPHA_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)
ADAPT_GRID = (("adam", 3e-3), ("adam", 1e-2), ("sgd", None))  # None: the chosen alpha
STEP_POINTS = (0, 1, 3, 10, 20)
SUPPORT_SEED = 7


def cpu_seconds() -> float:
    return time.process_time()


# --------------------------------------------------------------------------------------------
# Part A


def part_a(steps: int | None = None, progress: bool = True) -> dict:
    """Train the English -> French GPT; return its rows, settings and curve, and save it."""
    torch.manual_seed(0)
    split = nt.split_numbers()
    tokenizer = nt.make_tokenizer(("fr",))
    order = list(split["train"])
    random.Random(0).shuffle(order)
    train_ids = torch.tensor(tokenizer.encode("".join(nt.pair_line(n) for n in order)))
    val_ids = torch.tensor(tokenizer.encode("".join(nt.pair_line(n) for n in split["val"])))
    config = TrainConfig(**dict(A_TRAIN, **({} if steps is None else {"max_steps": steps})))
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, **A_MODEL))
    wrapped = nt.TranslationLoss(model, tokenizer)
    subset = random.Random(1).sample(split["val"], VAL_SUBSET)
    curve = {"step": [], "val_exact": [], "val_loss": [], "train_loss": [], "cpu_seconds": []}
    best = {"score": (-1.0, 0.0)}
    started = cpu_seconds()

    def on_eval(step, history):
        exact = sum(nt.exact_matches(nt.translate_numbers(model, tokenizer, subset), subset, "fr")) / len(subset)
        model.train()
        curve["step"].append(step)
        curve["val_exact"].append(round(exact, 4))
        curve["val_loss"].append(round(history.val_loss[-1], 4))
        curve["train_loss"].append(round(history.eval_train_loss[-1], 4))
        curve["cpu_seconds"].append(round(cpu_seconds() - started, 1))
        if progress:
            print(f"A step {step}: val exact {exact:.3f} loss {history.val_loss[-1]:.4f} "
                  f"({curve['cpu_seconds'][-1]:.0f} CPU s)", file=sys.stderr, flush=True)
        score = (exact, -history.val_loss[-1])  # ties in exact match go to the lower validation loss
        if score > best["score"]:
            best.update(score=score, step=step, state=copy.deepcopy(model.state_dict()))

    history = train(wrapped, train_ids, val_ids, config, on_eval=on_eval, progress=False)
    train_cpu = cpu_seconds() - started
    model.load_state_dict(best["state"])
    model.eval()
    val_outcomes = nt.exact_matches(nt.translate_numbers(model, tokenizer, split["val"]), split["val"], "fr")
    test = list(split["test"])
    predictions = nt.translate_numbers(model, tokenizer, test)
    outcomes = nt.exact_matches(predictions, test, "fr")
    analogy = nt.Analogy({n: nt.number_words(n, "fr") for n in split["train"]})
    analogy_outcomes = nt.exact_matches([analogy(n) for n in test], test, "fr")
    task = "English -> French, numbers 1-9999"
    rows = [proportion(APPLICATION, task, "exact match", "GPT trained from scratch (greedy)", sum(outcomes),
                       len(test)),
            proportion(APPLICATION, task, "exact match", "analogy from the training pairs", sum(analogy_outcomes),
                       len(test), is_baseline=True)]
    save_checkpoint(nt.MODEL_DIR / "fr", model, tokenizer, train_config=config, step=best["step"],
                    metadata={"part": "A", "chosen_step": best["step"]}, dtype=torch.bfloat16)
    errors = [{"number": n, "english": nt.number_words(n, "en"), "model": p, "reference": nt.number_words(n, "fr")}
              for n, p, ok in zip(test, predictions, outcomes) if not ok]
    return {"rows": rows, "extra": {
        "part_a": {"model": A_MODEL, "parameters": model.num_parameters(), "training": config.to_dict(),
                   "chosen_step": best["step"],
                   "chosen_on": f"exact match on {VAL_SUBSET} validation numbers, then validation loss",
                   "val_exact_chosen": round(sum(val_outcomes) / len(val_outcomes), 4), "val_n": len(val_outcomes),
                   "curve": curve, "train_cpu_seconds": round(train_cpu, 1),
                   "train_wall_seconds": round(history.seconds, 1),
                   "split": {k: len(v) for k, v in split.items()},
                   "test_outcomes": [int(x) for x in outcomes],
                   "analogy_outcomes": [int(x) for x in analogy_outcomes],
                   "mcnemar_p_gpt_vs_analogy": round(nt.mcnemar_p(outcomes, analogy_outcomes), 6),
                   "errors": errors[:40], "error_count": len(errors)}}}


# --------------------------------------------------------------------------------------------
# Part B: tasks are languages.


class Languages:
    """The pairs of Part B (numbers 1..999), packed into rows of the model's context."""

    def __init__(self):
        self.split = nt.split_numbers(nt.PART_B_MAX)
        self.tokenizer = nt.make_tokenizer(tuple(nt.LANGUAGES), nt.PART_B_MAX)
        self.length = B_MODEL["context_length"]

    def pack(self, numbers, language, count=None):
        return nt.pack([nt.pair_line(n, language) for n in numbers], self.tokenizer, self.length, count)

    def support(self, language: str) -> list[int]:
        """The K support numbers of a held-out language: training numbers, drawn once per language."""
        return random.Random(f"{SUPPORT_SEED}-{language}").sample(self.split["train"], SHOTS)

    def meta_batch(self, seed: int, iteration: int) -> maml.TaskBatch:
        rng = random.Random(f"{seed}-{iteration}")
        languages = rng.sample(META_TRAIN, META_BATCH)
        draws = [rng.sample(self.split["train"], SHOTS + QUERIES) for _ in languages]
        support = [self.pack(d[:SHOTS], lang) for d, lang in zip(draws, languages)]
        query = [self.pack(d[SHOTS:], lang) for d, lang in zip(draws, languages)]
        rows = max(x.shape[0] for x, _ in support + query)
        pad = [(self._pad(x, rows, self.newline), self._pad(y, rows, nt.IGNORE)) for x, y in support + query]
        xs, ys = zip(*pad)
        return maml.TaskBatch(torch.stack(xs[:META_BATCH]), torch.stack(ys[:META_BATCH]),
                              torch.stack(xs[META_BATCH:]), torch.stack(ys[META_BATCH:]))

    @property
    def newline(self) -> int:
        return self.tokenizer.encode(nt.NEWLINE)[0]

    @staticmethod
    def _pad(t, rows, value):
        return torch.cat([t, torch.full((rows - t.shape[0], t.shape[1]), value, dtype=t.dtype)])

    def context(self, language: str, numbers) -> tuple[str, int]:
        """As many support lines as leave room for the longest question and answer; and how many."""
        room = self.length - max(len(nt.prompt(n)) + len(nt.number_words(n, language)) + 1 for n in numbers) - 1
        text, used = "", 0
        for n in self.support(language):
            line = nt.pair_line(n, language)
            if len(nt.NEWLINE + text + line) > room:
                break
            text, used = text + line, used + 1
        return (nt.NEWLINE + text[:-1]) if used else "", used


def make_b_model(vocab_size: int, seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, **B_MODEL))


def _batch_loss(model, x, y):
    return nt.masked_loss(model(x), y)


def pretrain_step(model, optimizer, batch: maml.TaskBatch) -> float:
    x = torch.cat([batch.x_support.flatten(0, 1), batch.x_query.flatten(0, 1)])
    y = torch.cat([batch.y_support.flatten(0, 1), batch.y_query.flatten(0, 1)])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = _batch_loss(model, x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(loss.detach())


def maml_step(model, optimizer, batch: maml.TaskBatch, alpha: float) -> float:
    gradients, loss = maml.maml_gradient(model, dict(model.named_parameters()), batch, loss_fn=nt.masked_loss,
                                         inner_lr=alpha, steps=1, engine="autograd")
    for name, p in model.named_parameters():
        p.grad = gradients[name]
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def _run(step, model, optimizer, data, *, start, end, budget, first, log, label, progress):
    """Steps until this process has used ``end`` of the CPU budget; the learning rate follows that clock."""
    origin = cpu_seconds() - start * budget
    iteration = first
    while (elapsed := cpu_seconds() - origin) < end * budget:
        for group in optimizer.param_groups:
            group["lr"] = schedule(elapsed / budget)
        log.add(iteration, cpu_seconds() - origin, step(model, optimizer, data.meta_batch(0, iteration)))
        iteration += 1
        if progress and iteration % 100 == 0:
            print(f"B {label} iteration {iteration}: {log.loss_bits[-1] if log.loss_bits else float('nan'):.3f} "
                  f"bits ({elapsed:.0f} CPU s)", file=sys.stderr, flush=True)
    return iteration


def flatness(record: dict) -> dict:
    """Did the training loss stop moving? Its change over the last ``FLAT_SHARE`` of the iterations since the
    run's last switch of objective: the mean over the last ``FLAT_SPAN`` iterations minus the mean over the
    ``FLAT_SPAN`` iterations that ended that many iterations earlier. Flat when it moved less than ``FLAT_BITS``."""
    log = record["log"]
    iterations, losses = log["iteration"], log["loss_bits"]
    start = record.get("switch_iteration", 0)
    window = int(FLAT_SHARE * (iterations[-1] - start)) if iterations else 0
    points = [i for i, it in enumerate(iterations) if it > start]
    span = max(1, FLAT_SPAN // LOG_EVERY)
    earlier = [i for i in points if iterations[i] <= iterations[-1] - window]
    if window < FLAT_SPAN or not earlier or earlier[-1] - points[0] + 1 < span:
        return {"change_bits": None, "flat": False, "window_iterations": window}
    end = earlier[-1]
    change = sum(losses[-span:]) / span - sum(losses[end - span + 1:end + 1]) / span
    return {"change_bits": round(change, 4), "flat": abs(change) < FLAT_BITS, "window_iterations": window,
            "span_iterations": span * LOG_EVERY}


def heldout_loss(model, x, y) -> float:
    with torch.no_grad():
        return float(_batch_loss(model, x, y))


def adapt(model, x, y, optimizer: str, lr: float, steps: int) -> GPT:
    """A copy of ``model`` after ``steps`` full-batch steps on the support rows ``(x, y)``."""
    net = copy.deepcopy(model).train()
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(net.parameters(), lr=lr)
    for _ in range(steps):
        loss = _batch_loss(net, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval()


def adaptation_losses(model, data: Languages, language: str, numbers, optimizer: str, lr: float) -> list[float]:
    """Held-out loss (bits per translated character) after each of ``STEP_POINTS`` steps on the support pairs."""
    xs, ys = data.pack(data.support(language), language)
    xq, yq = data.pack(numbers, language)
    net = copy.deepcopy(model).train()
    opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(net.parameters(), lr=lr)
    losses, done = [], 0
    for point in STEP_POINTS:
        for _ in range(point - done):
            loss = _batch_loss(net, xs, ys)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        done = point
        value = heldout_loss(net.eval(), xq, yq) / LN2
        net.train()
        losses.append(value if math.isfinite(value) else 99.0)
    return losses


def choose_adaptation(model, data: Languages, alpha: float) -> dict:
    """The (optimizer, learning rate, steps) with the lowest mean validation-language loss."""
    scores = {}
    for optimizer, lr in ADAPT_GRID:
        lr = alpha if lr is None else lr
        curves = [adaptation_losses(model, data, lang, data.split["val"], optimizer, lr) for lang in META_VAL]
        for index, point in enumerate(STEP_POINTS):
            scores[(optimizer, lr, point)] = sum(c[index] for c in curves) / len(curves)
    optimizer, lr, steps = min(scores, key=scores.get)
    if steps == 0:
        optimizer, lr = "none", 0.0
    return {"optimizer": optimizer, "lr": lr, "steps": steps, "val_bits": round(scores[min(scores, key=scores.get)], 4),
            "grid": {f"{o}/{lr:g}/{s}": round(v, 4) for (o, lr, s), v in scores.items()}}


def choose_alpha(model, data: Languages) -> tuple[float, dict]:
    """MAML's inner step size: the one SGD step on the support pairs that best lowers the validation loss."""
    scores = {}
    for alpha in ALPHA_GRID:
        values = []
        for lang in META_VAL:
            xs, ys = data.pack(data.support(lang), lang)
            xq, yq = data.pack(data.split["val"], lang)
            values.append(heldout_loss(adapt(model, xs, ys, "sgd", alpha, 1), xq, yq) / LN2)
        scores[alpha] = sum(values) / len(values)
    return min(scores, key=scores.get), {f"{a:g}": round(v, 4) for a, v in scores.items()}


def part_b(budget: float = BUDGET, progress: bool = True) -> dict:
    data = Languages()
    vocab = data.tokenizer.vocab_size
    model = make_b_model(vocab, 0)
    optimizer = make_optimizer(model, lr=3e-3, weight_decay=0.01, betas=(0.9, 0.99))
    log = Log()
    started = cpu_seconds()
    middle = _run(pretrain_step, model, optimizer, data, start=0.0, end=SWITCH, budget=budget, first=0, log=log,
                  label="pretraining", progress=progress)
    snapshot = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), copy.deepcopy(log)
    alpha_started = cpu_seconds()
    alpha, alpha_scores = choose_alpha(model, data)
    alpha_cpu = cpu_seconds() - alpha_started
    second_half = cpu_seconds()
    end = _run(pretrain_step, model, optimizer, data, start=SWITCH, end=1.0, budget=budget,
               first=middle, log=log, label="pretraining", progress=progress)
    finetune_cpu = cpu_seconds() - second_half + (alpha_started - started)
    pretrained = model.eval()
    meta = make_b_model(vocab, 0)
    meta_optimizer = make_optimizer(meta, lr=3e-3, weight_decay=0.01, betas=(0.9, 0.99))
    meta.load_state_dict(snapshot[0])
    meta_optimizer.load_state_dict(snapshot[1])
    meta_log = snapshot[2]
    maml_started = cpu_seconds()
    meta_end = _run(lambda m, o, b: maml_step(m, o, b, alpha), meta, meta_optimizer, data, start=SWITCH, end=1.0,
                    budget=budget, first=middle, log=meta_log, label="MAML", progress=progress)
    meta_cpu = cpu_seconds() - maml_started + (alpha_started - started)
    meta.eval()
    train_cpu = cpu_seconds() - started - alpha_cpu
    records = {"finetune": {"iterations": end, "cpu_seconds": round(finetune_cpu, 1), "log": log.to_dict()},
               "pretrain-maml": {"iterations": meta_end, "switch_iteration": middle, "cpu_seconds": round(meta_cpu, 1),
                                 "log": meta_log.to_dict()}}
    for record in records.values():
        record["finished"] = flatness(record)
    for name, net in (("finetune", pretrained), ("pretrain-maml", meta)):
        save_checkpoint(nt.MODEL_DIR / name, net, data.tokenizer, step=records[name]["iterations"],
                        metadata={"part": "B", "method": name, "alpha": alpha, "budget_cpu_seconds": budget},
                        dtype=torch.bfloat16)
    # Every start adapts with the settings chosen on the validation languages.
    starts = {"pretrain-maml (MetaGPT)": meta, "pretrained, fine-tuned": pretrained,
              "scratch (the 32 pairs alone)": make_b_model(vocab, 1).eval()}
    eval_started = cpu_seconds()
    chosen = {name: choose_adaptation(net, data, alpha) for name, net in starts.items()}
    rows, outcomes, details = [], {}, {}
    for lang in META_TEST:
        split = "test" if lang in META_TEST else "val"
        numbers = list(data.split[split])
        xs, ys = data.pack(data.support(lang), lang)
        for name, net in starts.items():
            c = chosen[name]
            adapted = net if c["steps"] == 0 else adapt(net, xs, ys, c["optimizer"], c["lr"], c["steps"])
            outcomes[lang, name] = nt.exact_matches(nt.translate_numbers(adapted, data.tokenizer, numbers),
                                                    numbers, lang)
        context, used = data.context(lang, numbers)
        details[lang] = {"pairs_in_context": used, "numbers": len(numbers), "split": split}
        for name, net in (("in-context (pretrained, no step)", pretrained), ("in-context (MetaGPT, no step)", meta)):
            outcomes[lang, name] = nt.exact_matches(nt.translate_numbers(net, data.tokenizer, numbers, context),
                                                    numbers, lang)
        analogy = nt.Analogy({n: nt.number_words(n, lang) for n in data.support(lang)})
        outcomes[lang, "analogy from the 32 pairs"] = nt.exact_matches([analogy(n) for n in numbers], numbers, lang)
    methods = list(dict.fromkeys(name for _, name in outcomes))
    for lang in META_TEST:
        task = f"held-out language {nt.LANGUAGES[lang]}, K={SHOTS}, numbers 1-999"
        for name in methods:
            o = outcomes[lang, name]
            rows.append(proportion(APPLICATION, task, "exact match", name, sum(o), len(o),
                                   is_baseline=name.startswith("analogy")))
    pooled = {name: [x for lang in META_TEST for x in outcomes[lang, name]] for name in methods}
    for name in methods:
        rows.append(proportion(APPLICATION, f"{len(META_TEST)} held-out languages pooled, K={SHOTS}, numbers 1-999",
                               "exact match", name, sum(pooled[name]), len(pooled[name]),
                               is_baseline=name.startswith("analogy")))
    maml_name, finetune_name = "pretrain-maml (MetaGPT)", "pretrained, fine-tuned"
    return {"rows": rows, "extra": {"part_b": {
        "model": B_MODEL, "parameters": meta.num_parameters(), "languages": {"meta_train": META_TRAIN,
                                                                             "validation": META_VAL,
                                                                             "test": META_TEST},
        "shots": SHOTS, "queries": QUERIES, "meta_batch": META_BATCH, "budget_cpu_seconds": budget,
        "switch": SWITCH, "alpha": alpha, "alpha_scores_val_bits": alpha_scores,
        "alpha_choice_cpu_seconds": round(alpha_cpu, 1), "records": records,
        "chosen_adaptation": {k: {kk: vv for kk, vv in v.items() if kk != "grid"} for k, v in chosen.items()},
        "adaptation_grids_val_bits": {k: v["grid"] for k, v in chosen.items()},
        "contexts": details,
        "train_cpu_seconds": round(train_cpu, 1), "eval_cpu_seconds": round(cpu_seconds() - eval_started, 1),
        "mcnemar_p_maml_vs_finetune_pooled": round(nt.mcnemar_p(pooled[maml_name], pooled[finetune_name]), 6),
        "mcnemar_p_maml_vs_finetune_by_language": {
            lang: round(nt.mcnemar_p(outcomes[lang, maml_name], outcomes[lang, finetune_name]), 6)
            for lang in META_TEST},
        "outcomes": {f"{lang}/{name}": [int(x) for x in outcomes[lang, name]] for (lang, name) in outcomes
                     if lang in META_TEST},
        "seeds": 1}}}


# --------------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = CommandParser(prog="python -m book.experiments.number_translation", description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["A", "B", "both"], default="both")
    parser.add_argument("--steps", type=int, default=None, help="Part A training steps (default: A_TRAIN)")
    parser.add_argument("--budget", type=float, default=BUDGET, help="Part B CPU seconds of training")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be positive, got {args.steps}")
    if not (math.isfinite(args.budget) and args.budget > 0):
        parser.error(f"--budget must be a positive number of seconds, got {args.budget}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    wall = time.perf_counter()
    cpu = cpu_seconds()
    rows, extra = [], {}
    results = {}
    for part, run in (("A", lambda: part_a(args.steps, not args.quiet)), ("B", lambda: part_b(args.budget,
                                                                                             not args.quiet))):
        if args.part in (part, "both"):
            results[part] = run()
            record = results[part]["extra"][f"part_{part.lower()}"]
            record["command_cpu_seconds"] = round(cpu_seconds() - cpu, 1)
            record["command"] = " ".join(["python -m book.experiments.number_translation",
                                          *(sys.argv[1:] if argv is None else argv)])
    # The other part's rows are read only now, so that two parts run side by side both end up in the file.
    previous = read_results(APPLICATION) if args.part != "both" and results_path(APPLICATION).exists() else {}
    for part in ("A", "B"):
        key = f"part_{part.lower()}"
        if part in results:
            rows += results[part]["rows"]
            extra.update(results[part]["extra"])
        elif key in previous:
            mine = [r for r in previous["results"] if (r["task"].startswith("English")) == (part == "A")]
            rows += [Result(**dict(r, ci95=tuple(r["ci95"]) if r["ci95"] else None)) for r in mine]
            extra[key] = previous[key]
    path = write_results(APPLICATION, rows, wall_seconds=time.perf_counter() - wall, argv=sys.argv[1:] if argv is None
                         else argv, cpu_seconds=round(cpu_seconds() - cpu, 1), **extra)
    for row in rows:
        print(f"{row.task:<55} {row.method:<36} {row.value:.3f} [{row.ci95[0]:.3f}, {row.ci95[1]:.3f}] n={row.n}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
