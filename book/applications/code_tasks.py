"""Code generation that is scored by running it: a family of small functions with unit tests, and line completion.

Two tasks, both measured by ``python -m book.experiments.code`` (results in
``checkpoints/applications/results/code.json``; see that module for the command and its time):

**pass@1 on small functions.** Each function of the family is made by a stated rule: an
operation with a constant (``x plus 7``, ``the first 3 characters of s``) in a shape (on one
value, on each item of a list, summed over a list), with a docstring that says what it returns
and unit tests computed by Python from the rule. A model reads the signature and the docstring
and writes the body greedily; the body passes when every test passes in
:mod:`book.applications.sandbox` (a separate, limited process). The family is split three ways
by rule: some templates (operation and shape) never appear in training, and of the others,
some constants of each template are held out. Settings are chosen on the validation split.

**Line completion in held-out modules.** Lines of standard-library modules that the code model
never read (:func:`book.data.load_code_corpus`), completed from their middle, before and after a
few fine-tuning steps on the first half of the same module. The held-out modules are split into
validation modules (to choose the steps and learning rate) and test modules (scored once).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re

import torch

from book.applications.codegen import CODE_CHECKPOINT, LineTask, line_tasks
from book.applications.results import read_results
from book.data import CodeCorpus
from book.generate import generate
from book.model import GPT
from book.paths import ROOT
from book.tasks import TaskError

FUNCTIONS_CHECKPOINT = ROOT / "checkpoints" / "applications" / "code-functions"

# ---------------------------------------------------------------------------------------------
# The family of functions

CONSTANTS = tuple(range(2, 18))
# An operation: (what the docstring says, what the code does, the Python function the tests are computed from).
NUMBER_OPERATIONS = {
    "plus": ("{a} plus {k}", "{a} + {k}", lambda a, k: a + k),
    "minus": ("{a} minus {k}", "{a} - {k}", lambda a, k: a - k),
    "times": ("{a} times {k}", "{a} * {k}", lambda a, k: a * k),
    "mod": ("{a} modulo {k}", "{a} % {k}", lambda a, k: a % k),
    "div": ("{a} divided by {k}, rounded down", "{a} // {k}", lambda a, k: a // k),
    "max": ("the larger of {a} and {k}", "max({a}, {k})", max),
    "min": ("the smaller of {a} and {k}", "min({a}, {k})", min),
    "pow": ("{a} to the power {k}", "{a} ** {k}", lambda a, k: a ** k),
}
STRING_OPERATIONS = {
    "repeat": ("{a} repeated {k} times", "{a} * {k}", lambda a, k: a * k),
    "head": ("the first {k} characters of {a}", "{a}[:{k}]", lambda a, k: a[:k]),
    "tail": ("the last {k} characters of {a}", "{a}[-{k}:]", lambda a, k: a[-k:]),
    "drop": ("{a} without its first {k} characters", "{a}[{k}:]", lambda a, k: a[k:]),
    "every": ("every {k}th character of {a}", "{a}[::{k}]", lambda a, k: a[::k]),
    "pad": ("{a} padded on the right with dots to length {k}", "{a}.ljust({k}, '.')", lambda a, k: a.ljust(k, ".")),
}
# A shape: (function name, argument, docstring, body), each a pattern around the operation.
SHAPES = {
    "one": ("{op}_{k}", "{a}", "Return {phrase}.", "return {expr}"),
    "each": ("{op}_{k}_each", "{a}s", "Return a list of {phrase} for each {a} in {a}s.",
             "return [{expr} for {a} in {a}s]"),
    "sum": ("sum_{op}_{k}", "{a}s", "Return the sum of {phrase} for each {a} in {a}s.",
            "return sum({expr} for {a} in {a}s)"),
}
NUMBER_SHAPES, STRING_SHAPES = ("one", "each", "sum"), ("one", "each")
NUMBER_INPUTS = (-7, 0, 3, 6, 10, 25, 1000)
STRING_INPUTS = ("python", "abcdefghijklmnopqrstuvwxyz", "hi", "sandbox tests")
# Templates (operation, shape) that no training function uses: each operation and each shape
# still appears in training in other templates, so writing these means combining the two.
VALIDATION_TEMPLATES = (("minus", "each"), ("min", "sum"), ("drop", "each"))
TEST_TEMPLATES = (("mod", "each"), ("max", "sum"), ("times", "sum"), ("tail", "each"))
HELD_CONSTANTS = (3, 4)  # of every other template: (validation, test) constants held out, drawn per template


@dataclasses.dataclass(frozen=True)
class Function:
    """One function of the family: the prompt (signature and docstring), the reference body, its tests."""

    operation: str
    shape: str
    constant: int
    prompt: str  # "def plus_7(x):\n    \"\"\"Return x plus 7.\"\"\"\n"
    body: str  # "    return x + 7"
    tests: tuple[str, ...]  # assert statements

    @property
    def name(self) -> str:
        return self.prompt[4:self.prompt.index("(")]

    @property
    def template(self) -> tuple[str, str]:
        return self.operation, self.shape

    @property
    def source(self) -> str:
        return self.prompt + self.body + "\n"

    def program(self, body: str) -> str:
        """The function with ``body`` in place of the reference's."""
        return self.prompt + body + "\n"


def make_function(operation: str, shape: str, constant: int) -> Function:
    """The function of the family for one operation, shape and constant, with tests computed from the rule."""
    if operation in NUMBER_OPERATIONS:
        (phrase, expr, rule), inputs, shapes = NUMBER_OPERATIONS[operation], NUMBER_INPUTS, NUMBER_SHAPES
        a = "x"
    elif operation in STRING_OPERATIONS:
        (phrase, expr, rule), inputs, shapes = STRING_OPERATIONS[operation], STRING_INPUTS, STRING_SHAPES
        a = "s"
    else:
        raise TaskError(f"unknown operation {operation!r}")
    if shape not in shapes:
        raise TaskError(f"{operation} has no shape {shape!r}; one of {', '.join(shapes)}")
    if constant not in CONSTANTS:
        raise TaskError(f"constant {constant} is outside {CONSTANTS[0]}..{CONSTANTS[-1]}")
    name_pattern, argument, doc, body = SHAPES[shape]
    fill = {"phrase": phrase.format(a=a, k=constant), "expr": expr.format(a=a, k=constant), "a": a}
    name = name_pattern.format(op=operation, k=constant)
    argument = argument.format(a=a)
    prompt = f'def {name}({argument}):\n    """{doc.format(**fill)}"""\n'
    if shape == "one":
        cases = [(value, rule(value, constant)) for value in inputs]
    else:
        lists = [list(inputs), list(inputs[3:6]), []] if a == "x" else [list(inputs), list(inputs[:2]), []]
        combine = (lambda items: [rule(v, constant) for v in items]) if shape == "each" else \
            (lambda items: sum(rule(v, constant) for v in items))
        cases = [(items, combine(items)) for items in lists]
    tests = tuple(f"assert {name}({value!r}) == {expected!r}" for value, expected in cases)
    return Function(operation, shape, constant, prompt, "    " + body.format(**fill), tests)


def templates() -> list[tuple[str, str]]:
    return ([(op, shape) for op in NUMBER_OPERATIONS for shape in NUMBER_SHAPES]
            + [(op, shape) for op in STRING_OPERATIONS for shape in STRING_SHAPES])


def function_splits(seed: int = 0) -> dict[str, list[Function]]:
    """The family split by rule into ``train``, ``validation`` and ``test``.

    Validation and test each hold (a) every constant of their held-out templates and (b) of
    every other template, a few constants (drawn per template) that training never shows with
    it. Each function records its split's kind in :func:`split_kind`.
    """
    rng = random.Random(seed)
    splits = {"train": [], "validation": [], "test": []}
    for template in templates():
        functions = [make_function(*template, k) for k in CONSTANTS]
        if template in VALIDATION_TEMPLATES:
            splits["validation"] += functions
        elif template in TEST_TEMPLATES:
            splits["test"] += functions
        else:
            order = rng.sample(functions, len(functions))
            n_val, n_test = HELD_CONSTANTS
            splits["validation"] += order[:n_val]
            splits["test"] += order[n_val:n_val + n_test]
            splits["train"] += order[n_val + n_test:]
    return splits


def split_kind(function: Function) -> str:
    """``held-out template`` or ``held-out constant`` (for validation and test functions)."""
    held = VALIDATION_TEMPLATES + TEST_TEMPLATES
    return "held-out template" if function.template in held else "held-out constant"


def training_text(functions: list[Function], *, repeats: int, seed: int = 0) -> str:
    """The training functions in ``repeats`` shuffled orders, separated by blank lines."""
    rng = random.Random(seed)
    parts = []
    for _ in range(repeats):
        order = list(functions)
        rng.shuffle(order)
        parts += [f.source for f in order]
    return "\n".join(parts)


def written_body(text: str) -> str:
    """The body in a continuation of a prompt: its lines up to the first that is blank or not indented."""
    lines = []
    for line in text.split("\n"):
        if not line.startswith("    ") or not line.strip():
            break
        lines.append(line)
    return "\n".join(lines)


def greedy_texts(model: GPT, tokenizer, prompts: list[str], n_chars: list[int] | int, *,
                 batch_size: int = 64) -> list[str]:
    """Each prompt's greedy continuation of ``n_chars`` characters, batching prompts of equal length.

    Prompts are grouped by length and, within a length, by how many characters each needs, so
    a batch stops as soon as its longest request is met; outputs are in the order of ``prompts``.
    """
    n_chars = [n_chars] * len(prompts) if isinstance(n_chars, int) else list(n_chars)
    if len(n_chars) != len(prompts):
        raise TaskError(f"{len(n_chars)} lengths for {len(prompts)} prompts")
    encoded = [tokenizer.encode(p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (len(encoded[i]), n_chars[i]))
    texts = [""] * len(prompts)
    for _, group in itertools.groupby(order, key=lambda i: len(encoded[i])):
        group = list(group)
        for first in range(0, len(group), batch_size):
            batch = group[first:first + batch_size]
            idx = torch.tensor([encoded[i] for i in batch], dtype=torch.long)
            out = generate(model, idx, max_new_tokens=max(n_chars[i] for i in batch), do_sample=False)
            for i, row in zip(batch, out):
                texts[i] = tokenizer.decode(row[idx.shape[1]:idx.shape[1] + n_chars[i]].tolist())
    return texts


PROMPT_WIDTH = 160  # every function prompt is filled on the left to this many characters


def context_text(train: list[Function]) -> str:
    """The text that fills function prompts on the left: six training functions (drawn once), as in training."""
    text = "\n".join(f.source for f in random.Random(0).sample(train, 6)) + "\n"
    if len(text) < PROMPT_WIDTH:
        raise TaskError(f"the context text has only {len(text)} characters; need {PROMPT_WIDTH}")
    return text


def write_functions(model: GPT, tokenizer, functions: list[Function], context: str, max_chars: int = 64) -> list[str]:
    """The body the model writes greedily after each function's signature and docstring.

    Each prompt is the end of ``context`` (training functions) followed by the signature and
    docstring, PROMPT_WIDTH characters in all, so that all prompts run as one batch.
    """
    prompts = []
    for f in functions:
        if len(f.prompt) > PROMPT_WIDTH:
            raise TaskError(f"the prompt of {f.name} is longer than {PROMPT_WIDTH} characters")
        prompts.append(context[len(context) - (PROMPT_WIDTH - len(f.prompt)):] + f.prompt)
    texts = greedy_texts(model, tokenizer, prompts, max_chars)
    return [written_body(text) for text in texts]


def most_common_body(train: list[Function], function: Function) -> str:
    """The baseline body: the training body most often seen with the same argument name."""
    argument = function.prompt[function.prompt.index("(") + 1:function.prompt.index(")")]
    bodies = [f.body for f in train if f.prompt[f.prompt.index("(") + 1:f.prompt.index(")")] == argument]
    return max(sorted(set(bodies)), key=bodies.count)


_NUMBER = re.compile(r"\d+")


def nearest_body(train: list[Function], function: Function) -> str:
    """The baseline body: that of the training function whose docstring shares the most words, numbers replaced.

    A lookup that knows the family's form: it solves a held-out constant of a template seen in
    training, and shows what is left when the template itself is new.
    """
    def words(f):
        return set(_NUMBER.sub("K", f.prompt).replace('"""', " ").replace("(", " ").replace(")", " ").split())
    target = words(function)
    best = max(train, key=lambda f: (len(words(f) & target) / len(words(f) | target), f.name))
    return _NUMBER.sub(str(function.constant), best.body)


# ---------------------------------------------------------------------------------------------
# Line completion in held-out modules

def module_split(corpus: CodeCorpus) -> tuple[list[str], list[str]]:
    """(validation modules, test modules): every third held-out module (in name order) is for validation."""
    names = corpus.heldout_names
    return [n for i, n in enumerate(names) if i % 3 == 1], [n for i, n in enumerate(names) if i % 3 != 1]


def module_line_tasks(corpus: CodeCorpus, module: str, *, most: int, given: float = 0.5,
                      seed: int = 0) -> list[LineTask]:
    """Up to ``most`` lines from the second half of ``module``, each to be completed from its middle."""
    try:  # line_tasks samples n of its candidates; asking for more than there are says how many
        line_tasks(corpus, [module], n=10**9, given=given, seed=seed, region=(0.5, 1.0))
    except TaskError as error:
        available = int(re.search(r"hold only (\d+)", str(error)).group(1))
    return line_tasks(corpus, [module], n=min(most, available), given=given, seed=seed, region=(0.5, 1.0))


def complete_rests(model: GPT, tokenizer, tasks: list[LineTask]) -> list[str]:
    """The model's greedy completion of each task's line, up to its first line break.

    Only ``len(reference) + 1`` characters are generated for each line: enough to decide exact
    match (the reference and then the line break) and the correct prefix, so the scores equal
    those of a longer generation.
    """
    texts = greedy_texts(model, tokenizer, [t.prompt for t in tasks], [len(t.line) + 1 for t in tasks])
    return [text.split("\n")[0] for text in texts]


def line_correct(predictions: list[str], tasks: list[LineTask]) -> list[bool]:
    return [p.strip() == t.line.strip() for p, t in zip(predictions, tasks, strict=True)]


# ---------------------------------------------------------------------------------------------
# Statistics

def mcnemar_exact(before: list[bool], after: list[bool]) -> dict:
    """McNemar's exact test of paired outcomes: a two-sided binomial test on the discordant pairs.

    ``gained`` items are right only ``after``, ``lost`` only ``before``; under the null
    hypothesis each discordant pair is either with probability 1/2.
    """
    if len(before) != len(after) or not before:
        raise TaskError(f"need two equally long, non-empty lists of outcomes, got {len(before)} and {len(after)}")
    gained = sum(1 for b, a in zip(before, after) if a and not b)
    lost = sum(1 for b, a in zip(before, after) if b and not a)
    n = gained + lost
    tail = sum(math.comb(n, i) for i in range(min(gained, lost) + 1)) / 2 ** n if n else 1.0
    return {"gained": gained, "lost": lost, "p_value": min(1.0, 2 * tail)}


# ---------------------------------------------------------------------------------------------
# For the chapter

def code_table() -> list[dict]:
    """The code application's results as table rows (one dict per row), read from its results file."""
    rows = read_results("code")["results"]
    return [{"task": row["task"], "method": row["method"], "metric": row["metric"], "value": round(row["value"], 3),
             "ci95": None if row["ci95"] is None else f"{row['ci95'][0]:.3f}-{row['ci95'][1]:.3f}", "n": row["n"],
             "baseline": row["is_baseline"]} for row in rows]


def code_summary() -> dict:
    """The figures the chapter quotes, from the results file: the line-completion test and pass@1 per split."""
    payload = read_results("code")
    lines, functions = payload["lines"], payload["functions"]
    pass_at_1 = {row["task"].removeprefix("functions, "): {"value": row["value"], "ci95": row["ci95"], "n": row["n"]}
                 for row in payload["results"] if row["metric"] == "pass@1" and not row["is_baseline"]}
    return {"lines": {"chosen": lines["chosen"], **lines["mcnemar"]}, "functions_chosen": functions["chosen"],
            "pass_at_1": pass_at_1, "wall_seconds": payload["wall_seconds"], "command": payload["command"]}


def demo(operation: str = "plus", shape: str = "each", constant: int = 5, checkpoint=FUNCTIONS_CHECKPOINT) -> dict:
    """Write one function with the shipped model and run its tests in the sandbox (a few seconds)."""
    from book.applications.sandbox import run_tests
    from book.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    function = make_function(operation, shape, constant)
    context = code_tasks_context()
    body = write_functions(loaded.model, loaded.tokenizer, [function], context)[0]
    outcome = run_tests(function.program(body), list(function.tests))
    return {"program": function.program(body), "tests": list(function.tests), "status": outcome.status,
            "passed": outcome.passed, "split": _split_of(function)}


def code_tasks_context() -> str:
    return context_text(function_splits()["train"])


def _split_of(function: Function) -> str:
    for name, functions in function_splits().items():
        if function in functions:
            return name
    return "none"


__all__ = ["CODE_CHECKPOINT", "Function", "make_function", "function_splits", "mcnemar_exact", "code_table",
           "code_summary", "demo"]
