"""The training engine and checkpoints: schedule, optimizer groups, batches, the loop, save/load/resume."""
import json

import numpy as np
import pytest
import torch

from book.checkpoint import CheckpointError, load_checkpoint, load_training_state, save_checkpoint
from book.model import GPT, GPTConfig
from book.tokenize import CharTokenizer
from book.training import (
    History,
    TrainConfig,
    TrainingError,
    epoch_batch,
    estimate_loss,
    lr_schedule,
    make_optimizer,
    optimizer_for,
    random_batch,
    reading_counts,
    train,
)

TEXT = "to be or not to be, that is the question.\n" * 40


def tiny_model(vocab_size, context_length=8):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, context_length=context_length, n_layer=1, n_head=2, d_model=16))


def tiny_config(**overrides):
    settings = dict(max_steps=30, batch_size=4, context_length=8, max_lr=1e-2, min_lr=1e-3, warmup_steps=3,
                    eval_interval=10, eval_iters=2, seed=0)
    settings.update(overrides)
    return TrainConfig(**settings)


def data():
    tokenizer = CharTokenizer.from_text(TEXT)
    ids = torch.tensor(tokenizer.encode(TEXT))
    return tokenizer, ids[:1500], ids[1500:]


def test_lr_schedule():
    kw = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=100, max_steps=2000)
    assert lr_schedule(0, **kw) == pytest.approx(1e-5)
    assert lr_schedule(99, **kw) == pytest.approx(1e-3)
    assert lr_schedule(100, **kw) == pytest.approx(1e-3)
    assert lr_schedule(1050, **kw) == pytest.approx(5.5e-4)
    assert lr_schedule(2000, **kw) == pytest.approx(1e-4)
    assert lr_schedule(9999, **kw) == pytest.approx(1e-4)
    rates = [lr_schedule(step, **kw) for step in range(100, 2001)]
    assert all(a >= b for a, b in zip(rates, rates[1:])), "the cosine part only goes down"
    assert lr_schedule(0, max_lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=10) == 1.0


def test_optimizer_decays_matrices_only():
    model = tiny_model(5)
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and all(p.dim() == 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() == 1 for p in no_decay["params"])
    counted = sum(p.numel() for group in optimizer.param_groups for p in group["params"])
    assert counted == model.num_parameters()


def test_random_batch():
    ids = torch.arange(100)
    x, y = random_batch(ids, 5, 10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 10)
    torch.testing.assert_close(y[:, :-1], x[:, 1:])
    torch.testing.assert_close(y[:, 0], x[:, 0] + 1)
    with pytest.raises(TrainingError, match="too short for a context of 100"):
        random_batch(ids, 5, 100)


def test_random_batch_reads_a_compact_array_as_it_reads_a_tensor():
    ids = torch.randint(0, 200, (500,), generator=torch.Generator().manual_seed(0))
    compact = ids.numpy().astype(np.uint8)
    for source in (compact, np.memmap):
        if source is np.memmap:
            source = np.memmap(__import__("tempfile").TemporaryFile(), dtype=np.uint8, mode="w+", shape=(500,))
            source[:] = compact
        x, y = random_batch(source, 4, 16, torch.Generator().manual_seed(3))
        x_ref, y_ref = random_batch(ids, 4, 16, torch.Generator().manual_seed(3))
        assert x.dtype == torch.long and torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_train_takes_compact_ids_and_builds_its_optimizer_from_the_config():
    tokenizer, train_ids, val_ids = data()
    config = tiny_config(max_steps=6)
    as_tensors = train(tiny_model(tokenizer.vocab_size), train_ids, val_ids, config, progress=False)
    as_bytes = train(tiny_model(tokenizer.vocab_size), train_ids.numpy().astype(np.uint8),
                     val_ids.numpy().astype(np.uint8), config, progress=False)
    assert as_bytes.train_loss == as_tensors.train_loss
    optimizer = optimizer_for(tiny_model(5), config)
    assert optimizer.defaults["lr"] == config.max_lr and optimizer.defaults["betas"] == (config.beta1, config.beta2)
    assert optimizer.param_groups[0]["weight_decay"] == config.weight_decay


def test_training_lowers_the_loss_and_is_reproducible():
    tokenizer, train_ids, val_ids = data()
    before = estimate_loss(tiny_model(tokenizer.vocab_size), val_ids, batch_size=4, context_length=8, iters=4,
                           generator=torch.Generator().manual_seed(0))
    histories = []
    for _ in range(2):
        model = tiny_model(tokenizer.vocab_size)
        histories.append(train(model, train_ids, val_ids, tiny_config(), progress=False))
    history = histories[0]
    assert history.eval_steps == [10, 20, 30]
    assert len(history.train_loss) == 30 and len(history.learning_rate) == 30
    assert history.val_loss[-1] < before - 0.5
    assert history.train_loss == histories[1].train_loss
    assert history.ms_per_step > 0


def test_train_rejects_short_data():
    tokenizer, train_ids, _ = data()
    with pytest.raises(TrainingError, match="validation text has 5 tokens"):
        train(tiny_model(tokenizer.vocab_size), train_ids, train_ids[:5], tiny_config(), progress=False)


def test_bad_train_config():
    with pytest.raises(TrainingError, match="max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(TrainingError, match="min_lr"):
        TrainConfig(max_lr=1e-4, min_lr=1e-3)
    with pytest.raises(TrainingError, match="unknown"):
        TrainConfig.from_dict({"max_steps": 3, "learning_speed": 2})


def test_history_round_trip():
    history = History(steps=[0, 1], train_loss=[3.0, 2.0], seconds=1.5)
    assert History.from_dict(json.loads(json.dumps(history.to_dict()))) == history


def test_checkpoint_round_trip(tmp_path):
    tokenizer, train_ids, val_ids = data()
    model = tiny_model(tokenizer.vocab_size)
    config = tiny_config(max_steps=10)
    history = train(model, train_ids, val_ids, config, progress=False)
    save_checkpoint(tmp_path, model, tokenizer, train_config=config, step=10, history=history,
                    metadata={"note": "test"})
    loaded = load_checkpoint(tmp_path)
    assert loaded.step == 10 and loaded.metadata == {"note": "test"} and loaded.history == history
    assert loaded.train_config == config and loaded.tokenizer.vocabulary == tokenizer.vocabulary
    assert loaded.model.lm_head.weight is loaded.model.token_embedding.weight
    idx = train_ids[:8][None]
    torch.testing.assert_close(loaded.model(idx)[0], model.eval()(idx)[0])


class Interrupt(Exception):
    pass


def test_resume_continues_exactly(tmp_path):
    tokenizer, train_ids, val_ids = data()
    config = tiny_config(max_steps=20)

    def fresh():
        model = tiny_model(tokenizer.vocab_size)
        optimizer = make_optimizer(model, lr=config.max_lr, weight_decay=config.weight_decay,
                                   betas=(config.beta1, config.beta2))
        return model, optimizer, torch.Generator().manual_seed(0)

    model, optimizer, generator = fresh()
    straight = train(model, train_ids, val_ids, config, optimizer=optimizer, generator=generator, progress=False)

    def stop_at_ten(step, history):
        save_checkpoint(tmp_path, model, tokenizer, train_config=config, step=step, history=history,
                        optimizer=optimizer, generator=generator)
        raise Interrupt

    model, optimizer, generator = fresh()
    with pytest.raises(Interrupt):
        train(model, train_ids, val_ids, config, optimizer=optimizer, generator=generator, progress=False,
              on_eval=stop_at_ten)
    saved = load_checkpoint(tmp_path)
    resumed_optimizer = make_optimizer(saved.model, lr=config.max_lr, weight_decay=config.weight_decay,
                                       betas=(config.beta1, config.beta2))
    resumed_generator = torch.Generator()
    load_training_state(tmp_path, resumed_optimizer, resumed_generator)
    rest = train(saved.model, train_ids, val_ids, config, optimizer=resumed_optimizer, start_step=saved.step,
                 generator=resumed_generator, progress=False)
    assert saved.step == 10 and rest.steps == list(range(10, 20))
    assert rest.train_loss == pytest.approx(straight.train_loss[10:], rel=1e-5)


def test_checkpoint_errors(tmp_path):
    tokenizer, _, _ = data()
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "a", tiny_model(tokenizer.vocab_size), tokenizer)
    save_checkpoint(tmp_path / "b", GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=8, n_layer=1,
                                                  n_head=2, d_model=32)), tokenizer)
    (tmp_path / "b" / "checkpoint.json").write_bytes((tmp_path / "a" / "checkpoint.json").read_bytes())
    with pytest.raises(CheckpointError, match="from another config"):
        load_checkpoint(tmp_path / "b")
    (tmp_path / "a" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "a")
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_training_state(tmp_path / "b", make_optimizer(tiny_model(5), lr=1, weight_decay=0, betas=(0.9, 0.9)))


def test_epoch_sampling_gives_windows_of_the_text_and_depends_only_on_the_step():
    ids = np.arange(1000)  # distinct values, so a window tells where it starts
    context, batch = 16, 4
    for step in (0, 5, 61):  # 61 windows a pass: step 15 crosses into the second pass
        x, y = epoch_batch(ids, step, batch, context, seed=3)
        assert x.dtype == torch.int64 and x.shape == (batch, context)
        assert torch.equal(x[:, 1:], y[:, :-1]) and torch.equal(y[:, -1], x[:, -1] + 1)
        assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(batch, context - 1, dtype=torch.int64))
    again = epoch_batch(torch.as_tensor(ids), 7, batch, context, seed=3)
    assert torch.equal(again[0], epoch_batch(ids, 7, batch, context, seed=3)[0])
    assert not torch.equal(epoch_batch(ids, 7, batch, context, seed=4)[0], again[0])


def test_epoch_sampling_covers_each_character_once_per_pass():
    ids = np.arange(5000)  # distinct values, so a window tells where it starts
    context = 32
    per_pass = (len(ids) - context) // context
    counts = np.zeros(len(ids), dtype=int)
    for step in range(per_pass):
        x, _ = epoch_batch(ids, step, 1, context, seed=0)
        counts[x[0].numpy()] += 1
    offset = int(np.flatnonzero(counts)[0])
    assert offset < context
    assert (counts[offset:offset + per_pass * context] == 1).all()
    assert counts.sum() == per_pass * context


def test_unknown_sampling_or_compute_dtype_is_refused():
    with pytest.raises(TrainingError, match="sampling must be one of random, epochs"):
        TrainConfig(sampling="shuffle")
    with pytest.raises(TrainingError, match="compute_dtype must be one of float32, bfloat16"):
        TrainConfig(compute_dtype="float16")


def test_bfloat16_training_stays_close_to_float32():
    torch.manual_seed(0)
    ids = torch.randint(0, 8, (2000,))
    losses = {}
    for dtype in ("float32", "bfloat16"):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=8, context_length=16, n_layer=1, n_head=2, d_model=16))
        config = TrainConfig(max_steps=30, batch_size=8, context_length=16, max_lr=1e-2, min_lr=1e-3,
                             warmup_steps=2, eval_interval=30, eval_iters=2, compute_dtype=dtype,
                             sampling="epochs")
        history = train(model, ids, ids, config, progress=False)
        assert next(model.parameters()).dtype == torch.float32
        losses[dtype] = history.train_loss
    assert abs(losses["float32"][-1] - losses["bfloat16"][-1]) < 0.05


@pytest.mark.parametrize("sampling", ["random", "epochs"])
def test_reading_counts_replay_the_batches_of_a_run(sampling):
    ids = np.arange(3000)  # distinct values: a window's tokens are its positions
    config = TrainConfig(max_steps=40, batch_size=4, context_length=16, sampling=sampling, seed=5)
    counted = np.zeros(len(ids), dtype=np.int64)
    generator = torch.Generator().manual_seed(config.seed)
    for step in range(config.max_steps):
        if sampling == "epochs":
            x, y = epoch_batch(ids, step, config.batch_size, config.context_length, config.seed)
        else:
            x, y = random_batch(ids, config.batch_size, config.context_length, generator)
        for row_x, row_y in zip(x.numpy(), y.numpy()):
            counted[np.union1d(row_x, row_y)] += 1
    assert np.array_equal(reading_counts(len(ids), config), counted)
    if sampling == "epochs":  # 160 windows of 17 tokens: under one pass, so nothing is read 3 times
        assert counted.max() <= 2 and (counted > 0).sum() >= 160 * 16
