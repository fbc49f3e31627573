"""Tests for book.attention: agreement with PyTorch's attention, masks, shapes and errors."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from book.attention import (
    AttentionOnlyLanguageModel,
    AttentionShapeError,
    Linear,
    LoopedMultiHeadAttention,
    MultiHeadAttention,
    causal_mask,
    scaled_dot_product_attention,
)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def torch_copy(module):
    reference = nn.MultiheadAttention(module.d_model, module.n_heads, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(module.in_proj.weight)
        reference.in_proj_bias.copy_(module.in_proj.bias)
        reference.out_proj.weight.copy_(module.out_proj.weight)
        reference.out_proj.bias.copy_(module.out_proj.bias)
    return reference


def test_linear_matches_nn_linear_and_its_initialisation():
    ours = Linear(6, 4)
    reference = nn.Linear(6, 4)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 6)
    assert_close(ours(x), reference(x))
    torch.manual_seed(5)
    a = Linear(10, 3)
    torch.manual_seed(5)
    b = nn.Linear(10, 3)
    assert_close(a.weight, b.weight)
    assert_close(a.bias, b.bias)


def test_linear_without_bias():
    ours = Linear(4, 2, bias=False)
    assert ours.bias is None
    assert_close(ours(torch.eye(4)), ours.weight.T)


def test_linear_rejects_wrong_width():
    with pytest.raises(AttentionShapeError, match="input has 5 features"):
        Linear(3, 2)(torch.randn(4, 5))


def test_causal_mask():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    assert causal_mask(2, 3).shape == (2, 3)
    with pytest.raises(AttentionShapeError):
        causal_mask(0)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_matches_pytorch(causal):
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 4)
    out, weights = scaled_dot_product_attention(q, k, v, causal=causal)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    assert weights.shape == (2, 3, 5, 5)
    assert_close(weights.sum(-1), torch.ones(2, 3, 5))
    if causal:
        assert torch.all(weights.triu(1) == 0)


def test_sdpa_boolean_mask_matches_pytorch():
    q, k, v = torch.randn(2, 4, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 3)
    mask = torch.rand(4, 6) > 0.4
    mask[:, 0] = True  # every query sees at least one key
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    assert torch.all(weights[:, ~mask] == 0)


def test_sdpa_is_softmax_of_scaled_scores():
    q, k, v = torch.randn(3, 4), torch.randn(5, 4), torch.randn(5, 2)
    out, weights = scaled_dot_product_attention(q, k, v)
    expected = torch.softmax(q @ k.T / 2.0, dim=-1)
    assert_close(weights, expected)
    assert_close(out, expected @ v)


@pytest.mark.parametrize("shapes, message", [
    (((4, 8), (4, 6), (4, 3)), "same size d_k"),
    (((4, 8), (5, 8), (4, 3)), "one vector per position"),
    (((8,), (4, 8), (4, 3)), "must have shape"),
    (((2, 4, 8), (3, 4, 8), (3, 4, 2)), "batch dimensions"),
])
def test_sdpa_shape_errors(shapes, message):
    q, k, v = (torch.randn(*shape) for shape in shapes)
    with pytest.raises(AttentionShapeError, match=message):
        scaled_dot_product_attention(q, k, v)


def test_sdpa_mask_errors():
    q = torch.randn(4, 8)
    with pytest.raises(AttentionShapeError, match="boolean"):
        scaled_dot_product_attention(q, q, q, mask=torch.ones(4, 4))
    with pytest.raises(AttentionShapeError, match="does not broadcast"):
        scaled_dot_product_attention(q, q, q, mask=torch.ones(3, 4, dtype=torch.bool))


@pytest.mark.parametrize("module_class", [MultiHeadAttention, LoopedMultiHeadAttention])
@pytest.mark.parametrize("causal", [False, True])
def test_multi_head_matches_nn_multihead_attention(module_class, causal):
    module = module_class(d_model=24, n_heads=3, causal=causal)
    reference = torch_copy(module)
    x = torch.randn(2, 6, 24)
    mask = ~causal_mask(6) if causal else None
    ref_out, ref_weights = reference(x, x, x, attn_mask=mask, need_weights=True, average_attn_weights=False)
    out, weights = module(x)
    assert weights.shape == (2, 3, 6, 6)
    assert_close(out, ref_out)
    assert_close(weights, ref_weights)
    _, ref_mean = reference(x, x, x, attn_mask=mask, need_weights=True)
    assert_close(weights.mean(1), ref_mean)


def test_looped_and_batched_share_a_state_dict():
    batched = MultiHeadAttention(32, 8)
    looped = LoopedMultiHeadAttention(32, 8)
    looped.load_state_dict(batched.state_dict())
    x = torch.randn(3, 9, 32, requires_grad=True)
    out_b, w_b = batched(x)
    out_l, w_l = looped(x)
    assert_close(out_b, out_l)
    assert_close(w_b, w_l)
    grad_b, = torch.autograd.grad(out_b.sum(), x)
    grad_l, = torch.autograd.grad(out_l.sum(), x)
    assert_close(grad_b, grad_l)


def test_causal_output_ignores_the_future():
    module = MultiHeadAttention(16, 4, causal=True)
    x = torch.randn(1, 8, 16)
    changed = x.clone()
    changed[:, 5:] = torch.randn(1, 3, 16)
    assert_close(module(x)[0][:, :5], module(changed)[0][:, :5])


def test_multi_head_errors():
    with pytest.raises(AttentionShapeError, match="not divisible"):
        MultiHeadAttention(30, 4)
    with pytest.raises(AttentionShapeError, match="not divisible"):
        LoopedMultiHeadAttention(10, 3)
    with pytest.raises(AttentionShapeError, match="positive"):
        MultiHeadAttention(0, 1)
    with pytest.raises(AttentionShapeError, match=r"d_model=16\), got \(2, 5, 8\)"):
        MultiHeadAttention(16, 4)(torch.randn(2, 5, 8))
    with pytest.raises(AttentionShapeError, match="batch, length, d_model"):
        MultiHeadAttention(16, 4)(torch.randn(5, 16))


def test_parameter_count_does_not_depend_on_heads():
    counts = {sum(p.numel() for p in MultiHeadAttention(48, h).parameters()) for h in (1, 2, 4, 8, 16)}
    assert counts == {4 * 48 * 48 + 4 * 48}


def test_attention_only_language_model():
    model = AttentionOnlyLanguageModel(vocab_size=11, context_length=8, d_model=16, n_heads=2)
    ids = torch.randint(0, 11, (3, 8))
    logits, loss = model(ids)
    assert logits.shape == (3, 8, 11) and loss is None
    logits, loss = model(ids, ids)
    assert_close(loss, F.cross_entropy(logits.reshape(-1, 11), ids.reshape(-1)))
    assert abs(loss.item() - math.log(11)) < 1.0
    _, weights = model.forward_with_attention(ids[:, :5])
    assert weights.shape == (3, 2, 5, 5)
    with pytest.raises(AttentionShapeError, match="sequence of 9 tokens is longer than the context \\(8\\)"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(AttentionShapeError, match="targets"):
        model(ids, ids[:, :4])


def test_without_biases_both_versions_agree():
    batched = MultiHeadAttention(16, 4, bias=False)
    looped = LoopedMultiHeadAttention(16, 4, bias=False)
    assert batched.in_proj.bias is None and batched.out_proj.bias is None
    looped.load_state_dict(batched.state_dict())
    x = torch.randn(2, 5, 16)
    assert_close(batched(x)[0], looped(x)[0])
    assert sum(p.numel() for p in batched.parameters()) == 4 * 16 * 16


def test_a_text_box_drives_the_attention_view_of_a_model():
    """Chapter 2's explorer: typing a text shows the model's attention on it, and a text the
    model cannot read (too long, an unknown character) is reported while the last view stays."""
    from book.tokenize import CharTokenizer
    from book.viz import attention_explorer

    tokenizer = CharTokenizer("abc ")
    model = AttentionOnlyLanguageModel(tokenizer.vocab_size, context_length=8, d_model=16, n_heads=2)

    def attention_of(text):
        with torch.no_grad():
            _, weights = model.forward_with_attention(torch.tensor([tokenizer.encode(text)]))
        return weights, list(text)

    explorer = attention_explorer(attention_of, "abc")
    assert explorer.view.shape == (1, 2, 3, 3) and explorer.error is None
    explorer.text.value = "cab ba"  # what the reader's typing does
    assert explorer.error is None and explorer.view.shape == (1, 2, 6, 6)
    expected = attention_of("cab ba")[0].numpy()
    assert abs(explorer.view.shown_weights() - expected).max() <= 0.5 / 255 + 1e-6  # quantised to bytes
    explorer.text.value = "abcabcabc"
    assert "longer than the context" in explorer.error and explorer.view.shape == (1, 2, 6, 6)
    explorer.text.value = "abd"
    assert "not in the vocabulary" in explorer.error and explorer.view.shape == (1, 2, 6, 6)
    explorer.text.value = "ba"
    assert explorer.error is None and explorer.view.shape == (1, 2, 2, 2)
