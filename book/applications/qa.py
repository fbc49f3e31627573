"""Question answering: bAbI-style stories, a small GPT trained on them from scratch, and its exact match.

The stories follow tasks 1 and 2 of bAbI (Weston et al. 2015, "Towards AI-complete question
answering"), written here by a seeded generator and its stated rule.

*One supporting fact* (task 1). Two to four people, drawn from a pool of names, move between
places. A story is 2 to 6 sentences ``NAME VERB to the PLACE.`` (the verb one of "moved",
"went", "journeyed", "travelled", "went back"), each naming a person and a place drawn at
random. The question asks where one of the people who moved is, ``Where is NAME?``; the answer
is the place of that person's last sentence. One fact supports it.

*Two supporting facts* (task 2). Two or three people move (as above) and handle two or three
objects: ``NAME picked up the OBJECT.`` (or "got", "grabbed", "took") when the person's place is
known and the object is free (never placed, or lying where the person is), and ``NAME dropped
the OBJECT.`` (or "put down", "discarded", "left") for an object the person holds. A story has 4
to 8 sentences. The question, ``Where is the OBJECT?``, asks about an object that someone has
picked up; the answer is the place of its holder now, or the place where it was dropped. Two facts
support it: who has (or had) the object, and where that person went.

Every example is one line of characters: the story, the question and, after a space, the answer
and a line break, e.g. ``Mary moved to the bathroom. John went to the hallway. Where is Mary?
bathroom``. The vocabulary (:data:`VOCABULARY`) is every letter, space, ``.``, ``?`` and the line
break, so a name the model has never read still encodes.

*Held out.* The names, places and objects are each cut into three disjoint pools: training,
validation and test (:data:`POOLS`). Validation and test stories use only their own pool, so a
test question names a person the model has never read about and asks for a place (or an
object) it has never read, and every test story is new. Every letter of a held-out word occurs
in training stories (a character model cannot write a letter it never had as a target). Settings
are chosen on the validation stories; the test stories are scored once.

*Invented words.* With the training pools alone, a model learns the training places by heart
and, asked about a held-out place, writes a training place that starts like it: copying the
answer from the story is never needed. So a share of the training stories (``invented``) is
told with made-up names, places and objects (random letters, :func:`invented_words`), which can
only be copied. Validation and test stories never use them. The shipped model read only such
stories (``invented`` 1, chosen on validation over 0.5, where its answers to validation stories
often began with the right letter and went on as a training place).

*The model.* A small :class:`book.model.GPT` is trained from scratch on the training stories.
The loss (``loss_on``, see :func:`train_model`) is on the answer alone (the answer's characters
and the line break after it), on every character, or the sum of the two means
(``"all+answer"``). The shipped model has it on every character: predicting the story's names
again where they repeat teaches the model to copy, which the answer needs (chosen on the
validation stories over the sum, which answered none of them after as many steps).
The model answers greedily, character by character, up to the line break; a question counts as
answered when the answer is exactly the place.

The baseline is the heuristic "the last place mentioned in the story" (for two facts, the same
heuristic, and "the last place mentioned before the object's last mention"). The rule that
answers both tasks exactly, "the last place of the person asked about" (for two facts, "of
the object's last holder"), is the generator's own rule: :func:`rule_answer` re-derives it from
the text as an oracle and a check on the generator, never as a baseline.

The figures are in ``checkpoints/applications/results/qa.json`` and the model in
``checkpoints/applications/qa-model``, both written by ``python -m book.experiments.qa``.
"""
from __future__ import annotations

import dataclasses
import math
import random
import re
import time

import torch

from book.applications.results import read_results
from book.errors import BookError
from book.model import GPT
from book.paths import CHECKPOINTS
from book.tokenize import CharTokenizer
from book.training import lr_schedule, make_optimizer

VOCABULARY = " .?\n" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
TASKS = ("one supporting fact", "two supporting facts")
LOSSES = ("answer", "all", "all+answer")  # what the training loss is on (see train_model)
SPLITS = ("train", "validation", "test")
MODEL_DIR = CHECKPOINTS / "applications" / "qa-model"  # the model that reads the stories' words
CODED_MODEL_DIR = CHECKPOINTS / "applications" / "qa-coded-model"  # the one that reads them lettered

MOVES = ("moved", "went", "journeyed", "travelled", "went back")
TAKES = ("picked up", "got", "grabbed", "took")
DROPS = ("dropped", "put down", "discarded", "left")

_NAMES = """Mary John Sandra Daniel Fred Bill Julie Emily Jason Lily Bernhard Brian Greg Yann Jeff Sumit
Antoine Winona Gertrude Jessica Anna Peter Paul Laura Oliver Grace Henry Alice Thomas Clara Simon Helen
Victor Nora Walter Irene Hugo Rosa Felix Ada Oscar Edith Arthur Mabel Ralph Ivy Martin Lucy Dennis Vera
George Ruth Frank Iris Harold Olga Leonard Pearl Stanley Wendy Albert Flora Norman Hazel Cecil Dora
Ernest Elsie Gordon Agnes Howard Bertha Lionel Carmen Miles Esther Nigel Fiona Rupert Greta Vincent
Hilda Wallace Judith Xavier Kathleen Yusuf Lena Zachary Maud Quentin Nadia Ronald Opal Theo Petra
Ulrich Queenie Boris Rita Cyril Selma Dexter Tamsin Elmer Ursula Floyd Viola Gideon Wilma Horace Yolanda
Ingrid Jasper Kurt Leopold Magnus Neville Otis Percy Rufus Silas Tobias Umberto Basil Cedric Desmond
Edwin Gilbert Ivor Jerome Klaus Lazlo Mortimer Ned Orson Piers Roderick Sterling Trevor Alma Beryl
Constance Daphne Eunice Freya Gwen Harriet Imogen Joan Kitty Lorna Mildred Nell Phoebe Rhoda Sybil
Thea Una Winifred Zelda Amos Barnaby Clement Dorian Erasmus Fergus Godfrey Hector Ignatius Jonas
Kenneth Lambert Malcolm Nathaniel Octavia Philippa Rosalind Seymour Tabitha Augustus Bridget Caspar
Delphine Ezra Fabian Gustav Honor Isidore Juno Kasimir Leander Minerva Noel""".split()

_PLACES = """bathroom hallway kitchen garden office bedroom cellar attic library garage balcony park
school cinema station airport beach market bakery museum church hospital theatre stadium harbour forest
meadow orchard pantry porch studio lobby chapel barn stable mill dock pier tower castle palace courtyard
terrace basement laundry nursery gallery classroom canteen gym pool shed cottage farm village island
valley bridge tunnel bank pharmacy restaurant hotel prison zoo library workshop greenhouse dungeon cafe
arena temple lighthouse quarry vineyard cathedral bookshop laboratory observatory warehouse factory
monastery playground studio boathouse conservatory ballroom armoury scullery larder chamber vestibule
corridor veranda loft garret kennel aviary pavilion summerhouse gatehouse""".split()

_OBJECTS = """football apple milk book key hat umbrella lamp ball pen cup box bottle coin ring knife
spoon plate shoe sock scarf glove bag basket candle clock map letter ticket camera phone radio guitar
violin drum kite balloon rope ladder hammer brush bucket broom kettle teapot blanket pillow mirror
compass lantern wallet bracelet necklace parcel envelope trophy helmet saddle shovel axe flute banana
pear orange lemon carrot potato bread cheese cake""".split()


def _unique(words: list[str]) -> list[str]:
    return list(dict.fromkeys(words))


def _three_pools(words: list[str], validation: int, test: int, seed: int) -> dict[str, tuple[str, ...]]:
    shuffled = _unique(words)
    random.Random(seed).shuffle(shuffled)
    return {"test": tuple(sorted(shuffled[:test])),
            "validation": tuple(sorted(shuffled[test:test + validation])),
            "train": tuple(sorted(shuffled[test + validation:]))}


def _readable(pools: dict[str, dict[str, tuple[str, ...]]]) -> dict[str, dict[str, tuple[str, ...]]]:
    """The pools with every held-out word spelt in letters that training stories use.

    A character model cannot write a letter it never saw as a target (a validation place "quarry",
    with the only "q", could never be answered), so a held-out word with a letter missing from
    every training word and from the sentences' fixed words goes to the training pool instead.
    """
    fixed = " ".join(MOVES + TAKES + DROPS) + " to the Where is .?"
    seen = set(fixed) | {c for words in pools.values() for word in words["train"] for c in word}
    moved = {kind: [w for split in ("validation", "test") for w in words[split] if set(w) - seen]
             for kind, words in pools.items()}
    return {kind: {split: tuple(sorted(set(words[split]) | set(moved[kind]))) if split == "train"
                   else tuple(w for w in words[split] if w not in moved[kind]) for split in SPLITS}
            for kind, words in pools.items()}


# The held-out pools: names, places and objects of validation and test stories never occur in training,
# and are spelt in letters that training stories use.
POOLS = _readable({
    "names": _three_pools(_NAMES, 25, 40, seed=1),
    "places": _three_pools(_PLACES, 12, 16, seed=2),
    "objects": _three_pools(_OBJECTS, 8, 12, seed=3),
})


class QAError(BookError):
    """A question-answering example, split or setting that the generator or the scorer cannot use."""


@dataclasses.dataclass(frozen=True)
class Example:
    """One story with its question (``prompt``, ending in ``?``) and its one-word answer."""

    task: str
    prompt: str
    answer: str

    @property
    def text(self) -> str:
        """The training line: prompt, a space, the answer, a line break."""
        return f"{self.prompt} {self.answer}\n"


def _pool(split: str, kind: str) -> tuple[str, ...]:
    if split not in SPLITS:
        raise QAError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return POOLS[kind][split]


_HELD_OUT = frozenset(w for pools in POOLS.values() for split in ("validation", "test") for w in pools[split])
_FIXED = frozenset(" ".join(MOVES + TAKES + DROPS).split() + ["to", "the", "Where", "is"])
INVENTED = {"names": 6, "places": 12, "objects": 4}  # made-up words per invented story


def invented_words(rng: random.Random, kind: str, n: int) -> tuple[str, ...]:
    """``n`` different made-up words of 3 to 10 random letters (a name capitalised), none a held-out word.

    A training story told with them cannot be answered from a memorised list of places: the
    answer has to be copied from the story, which is what a held-out place needs too.
    """
    words: list[str] = []
    while len(words) < n:
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
        word = word.capitalize() if kind == "names" else word
        if word not in _HELD_OUT and word not in _FIXED and word not in words:
            words.append(word)
    return tuple(words)


def _words(rng: random.Random, split: str, kind: str, invent: bool) -> tuple[str, ...]:
    return invented_words(rng, kind, INVENTED[kind]) if invent else _pool(split, kind)


def one_fact_example(rng: random.Random, split: str, invent: bool = False) -> Example:
    """A task 1 story: 2-6 moves of 2-4 people, and where one of those who moved is.

    With ``invent``, the story's people and places are made-up words.
    """
    people = rng.sample(_words(rng, split, "names", invent), rng.randint(2, 4))
    places = _words(rng, split, "places", invent)
    sentences, where = [], {}
    for _ in range(rng.randint(2, 6)):
        person, place = rng.choice(people), rng.choice(places)
        sentences.append(f"{person} {rng.choice(MOVES)} to the {place}.")
        where[person] = place
    person = rng.choice(sorted(where))
    return Example(TASKS[0], " ".join(sentences) + f" Where is {person}?", where[person])


def two_fact_example(rng: random.Random, split: str, invent: bool = False) -> Example:
    """A task 2 story: 4-8 moves, pick-ups and drops, and where an object someone picked up is.

    With ``invent``, the story's people, places and objects are made-up words.
    """
    people = rng.sample(_words(rng, split, "names", invent), rng.randint(2, 3))
    objects = rng.sample(_words(rng, split, "objects", invent), rng.randint(2, 3))
    places = _words(rng, split, "places", invent)
    while True:
        sentences, where, holder, lying, touched = [], {}, {}, {}, set()
        for _ in range(rng.randint(4, 8)):
            takers = [(p, o) for p in sorted(where) for o in objects
                      if o not in holder and lying.get(o, where[p]) == where[p]]
            droppers = [(p, o) for o, p in sorted(holder.items())]
            action = rng.choices(("move", "take", "drop"), weights=(2, 2 if takers else 0, 1 if droppers else 0))[0]
            if action == "move":
                person, place = rng.choice(people), rng.choice(places)
                sentences.append(f"{person} {rng.choice(MOVES)} to the {place}.")
                where[person] = place
            elif action == "take":
                person, thing = rng.choice(takers)
                sentences.append(f"{person} {rng.choice(TAKES)} the {thing}.")
                holder[thing] = person
                lying.pop(thing, None)
                touched.add(thing)
            else:
                person, thing = rng.choice(droppers)
                sentences.append(f"{person} {rng.choice(DROPS)} the {thing}.")
                lying[thing] = where[person]
                del holder[thing]
        if touched:
            break
    thing = rng.choice(sorted(touched))
    answer = where[holder[thing]] if thing in holder else lying[thing]
    return Example(TASKS[1], " ".join(sentences) + f" Where is the {thing}?", answer)


def make_examples(task: str, split: str, n: int, seed: int, *, invented: float = 0.0) -> list[Example]:
    """``n`` examples of ``task`` drawn from the pools of ``split``, the same for the same ``seed``.

    With ``invented`` > 0 (training only), each story is, with that probability, told with made-up
    names, places and objects (:func:`invented_words`) instead of the training pools.
    """
    if task not in TASKS:
        raise QAError(f"task must be one of {', '.join(map(repr, TASKS))}, got {task!r}")
    if n <= 0:
        raise QAError(f"the number of examples must be positive, got {n}")
    _pool(split, "names")
    if not 0 <= invented <= 1 or (invented and split != "train"):
        raise QAError(f"invented must be in [0, 1], and 0 outside training; got {invented} for {split!r}")
    rng = random.Random(f"{task}/{split}/{seed}")
    make = one_fact_example if task == TASKS[0] else two_fact_example
    return [make(rng, split, invented > 0 and rng.random() < invented) for _ in range(n)]


_SENTENCE = re.compile(r"([A-Z][a-z]+) (" + "|".join(MOVES + TAKES + DROPS) + r")(?: to)? the ([a-z]+)\.")


def parse_story(prompt: str) -> tuple[list[tuple[str, str, str]], str]:
    """The sentences of a prompt as (person, kind, word), kind "move", "take" or "drop"; and the question's subject."""
    story, _, question = prompt.rpartition(" Where is ")
    match = re.fullmatch(r"(?:the )?([A-Za-z]+)\?", question)
    if not story or match is None:
        raise QAError(f"not a story ending in a question 'Where is ...?': {prompt[-40:]!r}")
    facts = []
    for person, verb, word in _SENTENCE.findall(story + " "):
        kind = "move" if verb in MOVES else "take" if verb in TAKES else "drop"
        facts.append((person, kind, word))
    return facts, match.group(1)


def last_place(prompt: str) -> str | None:
    """Baseline: the last place mentioned in the story (whoever went there)."""
    places = [word for _, kind, word in parse_story(prompt)[0] if kind == "move"]
    return places[-1] if places else None


def last_place_before_object(prompt: str) -> str | None:
    """Baseline (two facts): the last place mentioned before the last sentence about the object asked for."""
    facts, subject = parse_story(prompt)
    mentions = [i for i, (_, kind, word) in enumerate(facts) if kind != "move" and word == subject]
    places = [word for _, kind, word in facts[:mentions[-1] if mentions else len(facts)] if kind == "move"]
    return places[-1] if places else None


def rule_answer(prompt: str) -> str | None:
    """The oracle: the generator's rule re-applied to the text (the person's, or the object's holder's, last place)."""
    facts, subject = parse_story(prompt)
    where, holder, lying = {}, {}, {}
    for person, kind, word in facts:
        if kind == "move":
            where[person] = word
        elif kind == "take":
            holder[word] = person
            lying.pop(word, None)
        else:
            lying[word] = where.get(person)
            holder.pop(word, None)
    if subject in holder:
        return where.get(holder[subject])
    return lying.get(subject, where.get(subject))


def exact_match(predictions: list[str], answers: list[str]) -> list[bool]:
    """Per question: is the prediction exactly the answer (surrounding spaces ignored)?"""
    if len(predictions) != len(answers):
        raise QAError(f"{len(predictions)} predictions for {len(answers)} answers")
    return [p is not None and p.strip() == a for p, a in zip(predictions, answers)]


ENTITIES = ("words", "coded")  # how the model reads the story's names, places and objects
ENTITY_CODES = "ABCDEFGHIJKLMNOPQRSTUV"  # one capital letter per entity; "W" is left out, it opens "Where"


def code_entities(prompt: str) -> tuple[str, dict[str, str]]:
    """The prompt with each name, place and object replaced by a capital letter, and the letters' words.

    Every word outside the grammar's fixed words is an entity; the entities are lettered A, B,
    C, ... in the order they first occur, so ``"Mary went to the kitchen. Where is Mary?"`` becomes
    ``"A went to the B. Where is A?"`` with ``{"A": "Mary", "B": "kitchen"}``. This is the
    anonymisation Hermann et al. (2015) gave their reading-comprehension corpus: the model must
    answer from the story, since a letter means nothing outside it, and a name never read before
    is no harder than any other.
    """
    coded, letters = [], {}
    for token in prompt.split(" "):
        word, end = re.fullmatch(r"([^.?]*)([.?]?)", token).groups()
        if word and word not in _FIXED:
            if word not in letters:
                if len(letters) == len(ENTITY_CODES):
                    raise QAError(f"a story with more than {len(ENTITY_CODES)} names, places and objects")
                letters[word] = ENTITY_CODES[len(letters)]
            word = letters[word]
        coded.append(word + end)
    return " ".join(coded), {letter: word for word, letter in letters.items()}


def coded_example(example: Example) -> Example:
    """``example`` with its entities lettered (:func:`code_entities`), the answer too."""
    prompt, words = code_entities(example.prompt)
    letter = {word: letter for letter, word in words.items()}.get(example.answer)
    if letter is None:
        raise QAError(f"the answer {example.answer!r} is not in the story")
    return Example(example.task, prompt, letter)


def model_answers(model: GPT, tok: CharTokenizer, prompts: list[str], entities: str = "words") -> list[str]:
    """The model's answers to the prompts; with ``entities="coded"`` it reads lettered stories and its letter is
    turned back into the story's word (a reply that is no letter of the story stays as it is, and is wrong)."""
    if entities not in ENTITIES:
        raise QAError(f"entities must be one of {', '.join(ENTITIES)}, got {entities!r}")
    if entities == "words":
        return answer_questions(model, tok, prompts)
    coded = [code_entities(p) for p in prompts]
    replies = answer_questions(model, tok, [c for c, _ in coded], max_chars=3)
    return [words.get(reply.strip(), reply) for reply, (_, words) in zip(replies, coded)]


def tokenizer() -> CharTokenizer:
    return CharTokenizer(VOCABULARY)


def encode_batch(examples: list[Example], tok: CharTokenizer, *, loss_on: str = "answer") -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """Inputs and targets for a batch of examples, padded with line breaks to the longest.

    The targets are the next characters; with ``loss_on="answer"`` every target but the answer's
    characters and the line break after it is -100 (left out of the loss), with ``"all"`` only the
    padding is.
    """
    if loss_on not in ("answer", "all"):
        raise QAError(f"loss_on must be 'answer' or 'all', got {loss_on!r}")
    rows = [tok.encode(example.text) for example in examples]
    width = max(map(len, rows)) - 1
    pad = tok.char_to_id["\n"]
    x = torch.full((len(rows), width), pad, dtype=torch.long)
    y = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (example, row) in enumerate(zip(examples, rows)):
        x[i, :len(row) - 1] = torch.tensor(row[:-1])
        start = len(example.prompt) + 1 if loss_on == "answer" else 0  # the first answer character's position
        y[i, start - 1 if start else 0:len(row) - 1] = torch.tensor(row[max(start, 1):])
    return x, y


@torch.no_grad()
def answer_questions(model: GPT, tok: CharTokenizer, prompts: list[str], *, max_chars: int = 14,
                     batch_size: int = 256) -> list[str]:
    """The model's greedy answer to each prompt (the characters after ``prompt + " "`` up to a line break).

    Prompts of the same length go together: the model reads them once, keeping its keys and values
    (:class:`book.model.KVCache`), then writes one character per step, reading only that character.
    """
    model.eval()
    newline = tok.char_to_id["\n"]
    rows = [tok.encode(p + " ") for p in prompts]
    longest = max(map(len, rows), default=0)
    if longest + max_chars > model.config.context_length:
        raise QAError(f"a prompt of {longest - 1} characters and its answer do not fit the model's "
                      f"context of {model.config.context_length}")
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_length.setdefault(len(row), []).append(i)
    out: list[list[int]] = [[] for _ in rows]
    for length, members in sorted(by_length.items()):
        for begin in range(0, len(members), batch_size):
            chunk = members[begin:begin + batch_size]
            cache = model.new_cache(len(chunk))
            logits, _ = model(torch.tensor([rows[i] for i in chunk]), cache=cache)
            done = torch.zeros(len(chunk), dtype=torch.bool)
            for step in range(max_chars):
                nxt = logits[:, -1].argmax(-1)
                for j, i in enumerate(chunk):
                    if not done[j] and nxt[j] != newline:
                        out[i].append(int(nxt[j]))
                done |= nxt == newline
                if done.all() or step == max_chars - 1:
                    break
                logits, _ = model(nxt[:, None], cache=cache)
    return [tok.decode(o) for o in out]


def _pass_batches(lengths: list[int], batch_size: int, generator: random.Random) -> list[list[int]]:
    """One pass over the examples in batches of similar length (less padding), the batches in random order.

    The examples are shuffled, cut into groups of 16 batches, each group sorted by length and cut
    into batches; the few left over at the end (fewer than a batch) sit out that pass.
    """
    order = list(range(len(lengths)))
    generator.shuffle(order)
    batches = []
    group = 16 * batch_size
    for begin in range(0, len(order), group):
        chunk = sorted(order[begin:begin + group], key=lengths.__getitem__)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
    generator.shuffle(batches)
    return batches


def train_model(model: GPT, examples: list[Example], tok: CharTokenizer, *, steps: int, batch_size: int = 32,
                max_lr: float = 2e-3, min_lr: float = 1e-4, warmup_steps: int = 100, weight_decay: float = 0.1,
                loss_on: str = "answer", bf16: bool = True, seed: int = 0,
                on_step=None) -> dict:
    """Train ``model`` on the examples in passes (each example once per pass, in a new order), loss per ``loss_on``.

    Each pass reads the examples in batches of similar length (:func:`_pass_batches`).
    AdamW (weight decay on matrices only, :func:`book.training.make_optimizer`), the warm-up and
    cosine schedule of :func:`book.training.lr_schedule`, gradients clipped to norm 1, matrix
    products in bfloat16 under autocast when ``bf16``. Returns the loss per step and the time.
    """
    if loss_on not in LOSSES:
        raise QAError(f"loss_on must be one of {', '.join(LOSSES)}, got {loss_on!r}")
    if steps <= 0 or batch_size <= 0:
        raise QAError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    if len(examples) < batch_size:
        raise QAError(f"{len(examples)} examples are fewer than one batch of {batch_size}")
    optimizer = make_optimizer(model, lr=max_lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    generator = random.Random(seed)
    losses = []
    model.train()
    started = time.perf_counter()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)
    batches: list[list[int]] = []
    for step in range(steps):
        if not batches:
            batches = _pass_batches([len(e.text) for e in examples], batch_size, generator)
        batch = [examples[i] for i in batches.pop()]
        lr = lr_schedule(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps, max_steps=steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if loss_on == "all+answer":  # the mean over all characters plus the mean over the answers'
            x, y = encode_batch(batch, tok, loss_on="all")
            y_answer = encode_batch(batch, tok, loss_on="answer")[1]
            with autocast:
                logits = model(x)[0].float().flatten(0, 1)
            loss = (torch.nn.functional.cross_entropy(logits, y.flatten())
                    + torch.nn.functional.cross_entropy(logits, y_answer.flatten()))
        else:
            x, y = encode_batch(batch, tok, loss_on=loss_on)
            with autocast:
                _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    model.eval()
    if not all(map(math.isfinite, losses)):
        raise QAError("training diverged (a loss is not finite); lower the learning rate")
    return {"loss": losses, "seconds": time.perf_counter() - started}


def qa_table(path=None):
    """The question-answering results as rows (dicts): one per task and method, from the results file."""
    payload = read_results("qa", path)
    rows = [{"task": r["task"], "method": r["method"] + (" (baseline)" if r["is_baseline"] else ""),
             "exact match": r["value"], "95% interval": f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]", "n": r["n"]}
            for r in payload["results"]]
    return rows


def load_model(directory=CODED_MODEL_DIR) -> tuple[GPT, CharTokenizer, str]:
    """A shipped question-answering model, its tokenizer and how it reads entities ("words" or "coded")."""
    from book.checkpoint import load_checkpoint, read_metadata

    checkpoint = load_checkpoint(directory)
    if checkpoint.tokenizer.vocabulary != VOCABULARY:
        raise QAError(f"{directory} is not a question-answering model (another vocabulary)")
    entities = read_metadata(directory)["metadata"]["settings"].get("entities", "words")
    return checkpoint.model, checkpoint.tokenizer, entities


def demo(n: int = 3, seed: int = 2026, directory=CODED_MODEL_DIR):
    """The shipped model answers ``n`` new test stories of each task (held-out names, places, objects).

    The stories come from the test pools with a seed other than the scored test set's, so they are
    new too. Returns rows (dicts): task, story and question (as the model reads it), the rule's
    answer, the model's answer.
    """
    if n <= 0:
        raise QAError(f"n must be positive, got {n}")
    model, tok, entities = load_model(directory)
    examples = [e for task in TASKS for e in make_examples(task, "test", n, seed)]
    predictions = model_answers(model, tok, [e.prompt for e in examples], entities)
    read = [code_entities(e.prompt)[0] if entities == "coded" else e.prompt for e in examples]
    return [{"task": e.task, "story and question": e.prompt, "as the model reads it": r, "answer": e.answer,
             "model": p, "correct": p == e.answer} for e, r, p in zip(examples, read, predictions)]
