"""The GPT model: shapes, parameter count, causality, the KV cache, attention maps, sampling."""
import pytest
import torch
from torch.nn import functional as F

from book.generate import GenerationError, filter_logits, generate, next_token
from book.model import GPT, GPTConfig, ModelError, count_parameters


def tiny(**overrides):
    settings = dict(vocab_size=11, context_length=16, n_layer=2, n_head=2, d_model=8)
    settings.update(overrides)
    torch.manual_seed(0)
    return GPT(GPTConfig(**settings)).eval()


def test_forward_shapes_and_loss():
    model = tiny()
    idx = torch.randint(0, 11, (3, 7))
    logits, loss = model(idx)
    assert logits.shape == (3, 7, 11) and loss is None
    logits, loss = model(idx, idx)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 11), idx.reshape(-1)))


def test_initial_loss_is_near_uniform():
    model = tiny()
    _, loss = model(torch.randint(0, 11, (4, 16)), torch.randint(0, 11, (4, 16)))
    assert abs(loss.item() - torch.log(torch.tensor(11.0)).item()) < 0.1


@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_formula(bias):
    model = tiny(bias=bias)
    assert model.num_parameters() == count_parameters(model.config)
    assert model.num_parameters(include_positions=False) == count_parameters(model.config) - 16 * 8


def test_weights_are_tied():
    model = tiny()
    assert model.lm_head.weight is model.token_embedding.weight


def test_from_config():
    assert GPT.from_config(vocab_size=5, context_length=4, n_layer=1, n_head=1, d_model=4).config.n_layer == 1


def test_causal_future_tokens_do_not_change_the_past():
    model = tiny()
    idx = torch.randint(0, 11, (1, 10))
    changed = idx.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 11
    torch.testing.assert_close(model(idx)[0][:, :6], model(changed)[0][:, :6])


@pytest.mark.parametrize("settings, message", [
    (dict(d_model=10, n_head=4), "divisible"),
    (dict(n_layer=0), "n_layer"),
    (dict(dropout=1.5), "dropout"),
])
def test_bad_config(settings, message):
    with pytest.raises(ModelError, match=message):
        tiny(**settings)


def test_too_long_sequence_and_bad_ids():
    model = tiny()
    with pytest.raises(ModelError, match=r"sequence of 17 tokens is longer than the context \(16\)"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ModelError, match="outside the vocabulary"):
        model(torch.full((1, 3), 11))
    with pytest.raises(ModelError, match="shape"):
        model(torch.zeros(5, dtype=torch.long))


def test_kv_cache_gives_the_same_logits():
    model = tiny()
    idx = torch.randint(0, 11, (2, 16))
    full, _ = model(idx)
    cache = model.new_cache(batch_size=2)
    pieces = [model(idx[:, :5], cache=cache)[0], model(idx[:, 5:9], cache=cache)[0]]
    pieces += [model(idx[:, t:t + 1], cache=cache)[0] for t in range(9, 16)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)
    with pytest.raises(ModelError, match="after 16 cached tokens"):
        model(idx[:, :1], cache=cache)


def test_cached_and_uncached_generation_agree():
    model = tiny()
    prompt = torch.tensor([1, 2, 3])
    greedy = dict(max_new_tokens=12, do_sample=False)
    torch.testing.assert_close(generate(model, prompt, **greedy), generate(model, prompt, use_cache=False, **greedy))
    sampled = [generate(model, prompt, max_length=15, top_k=5, generator=torch.Generator().manual_seed(3),
                        use_cache=use_cache) for use_cache in (True, False)]
    torch.testing.assert_close(*sampled)
    assert len(sampled[0]) == 15


def test_generation_beyond_the_context():
    model = tiny()
    out = generate(model, torch.tensor([[1, 2]]), max_new_tokens=40, generator=torch.Generator().manual_seed(0))
    assert out.shape == (1, 42)


def test_generation_arguments():
    model = tiny()
    with pytest.raises(GenerationError, match="exactly one"):
        generate(model, torch.tensor([1]))
    with pytest.raises(GenerationError, match="shorter than the prompt"):
        generate(model, torch.tensor([1, 2, 3]), max_length=2)
    with pytest.raises(GenerationError, match="empty"):
        generate(model, torch.tensor([], dtype=torch.long), max_new_tokens=3)
    with pytest.raises(GenerationError, match="temperature"):
        generate(model, torch.tensor([1]), max_new_tokens=3, temperature=0)


def test_top_k_and_top_p_filtering():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).tolist() == [[True, False, False, False]]
    shuffled = logits[:, [2, 0, 3, 1]]
    assert torch.isfinite(filter_logits(shuffled, top_p=0.8)).tolist() == [[False, True, False, True]]
    with pytest.raises(GenerationError):
        filter_logits(logits, top_p=1.5)
    with pytest.raises(GenerationError):
        filter_logits(logits, top_k=0)


def test_greedy_and_temperature():
    logits = torch.tensor([[0.0, 2.0, 1.0]])
    assert next_token(logits, do_sample=False).item() == 1
    generator = torch.Generator().manual_seed(0)
    draws = [next_token(logits, temperature=0.01, generator=generator).item() for _ in range(20)]
    assert set(draws) == {1}


def test_attention_maps():
    model = tiny()
    idx = torch.randint(0, 11, (9,))
    maps = model.attention_maps(idx)
    assert maps.shape == (2, 2, 9, 9)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 9))
    assert torch.all(maps.triu(diagonal=1) == 0)
    # The explicit weights give the same output as the fused attention of the fast path.
    block = model.blocks[0]
    x = model.token_embedding(idx[None]) + model.position_embedding(torch.arange(9))
    attn = block.attn
    _, _, v = attn.split_heads(block.ln_1(x))
    y = (maps[0][None] @ v).transpose(1, 2).reshape(1, 9, 8)
    torch.testing.assert_close(attn.proj(y), attn(block.ln_1(x)))
    with pytest.raises(ModelError, match="one sequence"):
        model.attention_maps(torch.zeros(2, 3, dtype=torch.long))


def test_the_models_attention_is_chapter_2s_multi_head_attention():
    """The fused attention of the GPT computes what Chapter 2's lesson module computes."""
    from book.attention import MultiHeadAttention
    from book.model import CausalSelfAttention

    torch.manual_seed(0)
    fused = CausalSelfAttention(GPTConfig(vocab_size=11, context_length=16, n_layer=1, n_head=4, d_model=32))
    lesson = MultiHeadAttention(32, 4, causal=True)
    with torch.no_grad():
        for mine, theirs in ((lesson.in_proj, fused.qkv), (lesson.out_proj, fused.proj)):
            mine.weight.copy_(theirs.weight)
            mine.bias.copy_(theirs.bias)
    x = torch.randn(2, 9, 32)
    output, weights = lesson(x)
    torch.testing.assert_close(fused(x), output)
    torch.testing.assert_close(fused.attention_weights(x), weights)
