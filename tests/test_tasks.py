"""Task families for MetaGPT: shapes, determinism, splits and the entropy-rate oracle."""
import math

import pytest
import torch

from book.tasks import (
    DialectFamily,
    MarkovChain,
    SpeakerFamily,
    Task,
    TaskError,
    bits,
    family,
    random_markov_chain,
    shared_tokenizer,
)


def test_dialect_tasks_have_the_asked_shapes_and_alphabet():
    tasks = DialectFamily().sample("train", 3, seed=0, support=5, query=7, length=16)
    assert len(tasks) == 3
    vocabulary = shared_tokenizer().vocabulary
    for task in tasks:
        assert task.support.shape == (5, 17) and task.query.shape == (7, 17)
        assert set(shared_tokenizer().decode(task.support.flatten().tolist())) <= set("abcdefgh")
        assert 0 < task.oracle_bits < math.log2(3) + 1e-9  # at most three successors per character
        x, y = task.support_xy
        assert torch.equal(x[:, 1:], y[:, :-1])
    assert len(vocabulary) == 84


def test_tasks_are_determined_by_the_seed():
    a = DialectFamily().sample("test", 2, seed=4)
    b = DialectFamily().sample("test", 2, seed=4)
    c = DialectFamily().sample("test", 2, seed=5)
    assert all(torch.equal(x.support, y.support) for x, y in zip(a, b))
    assert not torch.equal(a[0].support, c[0].support)
    assert a[0].oracle_bits == c[0].oracle_bits  # same dialect, other text
    s1, s2 = SpeakerFamily().sample("val", 2, seed=1), SpeakerFamily().sample("val", 2, seed=1)
    assert [t.name for t in s1] == [t.name for t in s2] and torch.equal(s1[1].query, s2[1].query)


def test_splits_do_not_share_dialects_or_plays():
    train = DialectFamily().chain("train", 0).transitions
    assert not torch.equal(train, DialectFamily().chain("test", 0).transitions)
    plays = {split: {name.split("/")[0] for name in SpeakerFamily().speakers(split)}
             for split in ("train", "val", "test")}
    assert not plays["train"] & plays["test"] and not plays["val"] & plays["test"] and not plays["train"] & plays["val"]
    assert len(SpeakerFamily().speakers("test")) >= 32


def test_speaker_support_and_query_are_disjoint_text_of_one_speaker():
    task = SpeakerFamily().sample("test", 1, seed=0, first=0)[0]
    assert task.oracle_bits is None and task.support.shape == (8, 33)
    rows = {tuple(row.tolist()) for row in task.support}
    assert not rows & {tuple(row.tolist()) for row in task.query}


def test_entropy_rate_of_a_known_chain():
    # A fair coin flip after every character: exactly 1 bit per character.
    chain = MarkovChain("ab", torch.full((2, 2), 0.5))
    assert chain.entropy_rate() == pytest.approx(1.0)
    # a -> b always; b -> a or b with probability 1/2. Stationary (1/3, 2/3); rate 2/3 bit.
    chain = MarkovChain("ab", torch.tensor([[0.0, 1.0], [0.5, 0.5]]))
    torch.testing.assert_close(chain.stationary(), torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    assert chain.entropy_rate() == pytest.approx(2 / 3)


def test_empirical_entropy_matches_the_oracle():
    chain = random_markov_chain("abcdefgh", 3, torch.Generator().manual_seed(0))
    runs = chain.sample(200, 101, torch.Generator().manual_seed(1))
    P = chain.transitions.double()
    nll = -torch.log2(P[runs[:, :-1], runs[:, 1:]]).mean()
    assert float(nll) == pytest.approx(chain.entropy_rate(), abs=0.05)
    assert (P > 0).sum(1).eq(3).all()


def test_bits():
    assert bits(math.log(2)) == pytest.approx(1.0)


def test_errors_name_the_problem():
    with pytest.raises(TaskError, match="unknown split 'dev'"):
        DialectFamily().sample("dev", 2)
    with pytest.raises(TaskError, match="num_tasks must be a positive integer"):
        DialectFamily().sample("train", 0)
    with pytest.raises(TaskError, match="unknown task family 'poems'"):
        family("poems")
    with pytest.raises(TaskError, match="not in the shared vocabulary"):
        DialectFamily(alphabet="ab\u00e9")
    with pytest.raises(TaskError, match="successors must be between 1 and 8"):
        DialectFamily(successors=9)
    with pytest.raises(TaskError, match="each row of transitions"):
        MarkovChain("ab", torch.tensor([[0.5, 0.6], [0.5, 0.5]]))
    with pytest.raises(TaskError, match="too few"):
        SpeakerFamily().sample("test", 1, support=200, query=200)
    with pytest.raises(TaskError, match="support must have shape"):
        Task("empty", torch.zeros(0, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))


def test_cipher_tasks_permute_letters_of_the_speakers_windows():
    from book.tasks import CipherFamily

    family = CipherFamily()
    ciphered = family.sample("test", 3, seed=2, support=2, query=2, length=16, first=5)
    plain = SpeakerFamily(family.min_chars).sample("test", 3, seed=2, support=2, query=2, length=16, first=5)
    tokenizer = shared_tokenizer()
    for offset, (c, p) in enumerate(zip(ciphered, plain)):
        assert torch.equal(c.plain_query, p.query)
        table = family.substitution("test", 2, 5 + offset)
        assert torch.equal(table[p.support], c.support) and torch.equal(table[p.query], c.query)
        assert sorted(table.tolist()) == list(range(tokenizer.vocab_size))  # a permutation
        moved = {tokenizer.decode([i]) for i in range(tokenizer.vocab_size) if table[i] != i}
        assert moved <= set(family.letters + family.letters.upper())
    assert not torch.equal(family.substitution("test", 2, 5), family.substitution("test", 2, 6))
    with pytest.raises(TaskError, match="cipher letters"):
        CipherFamily(letters="e")


def test_every_area_raises_a_subclass_of_one_base_error():
    import book.checkpoint
    import book.data
    import book.distributed
    import book.experiments.metagpt
    import book.generate
    import book.maml
    import book.model
    import book.training
    from book.errors import BookError

    areas = [book.checkpoint.CheckpointError, book.data.DataError, book.distributed.DistributedError,
             book.experiments.metagpt.ExperimentError, book.generate.GenerationError, book.maml.TaskBatchError,
             book.model.ModelError, book.training.TrainingError, TaskError]
    assert all(issubclass(error, BookError) and issubclass(error, ValueError) for error in areas)
    with pytest.raises(BookError, match="unknown split"):
        DialectFamily().sample("dev", 1)
