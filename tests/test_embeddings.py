"""book.embeddings: sinusoidal and learned positional encodings and the input embedding z_i = e_i + p_i."""
import math

import pytest
import torch
from torch.testing import assert_close

from book.embeddings import InputEmbedding, PositionalEncoding, sinusoidal_positional_encoding


def test_sinusoidal_table_matches_the_formula():
    table = sinusoidal_positional_encoding(10, 6)
    assert table.shape == (10, 6) and table.dtype == torch.float32
    for i in range(10):
        for k in range(3):
            angle = i / 10000 ** (2 * k / 6)
            assert table[i, 2 * k].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[i, 2 * k + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_position_zero_alternates_zero_and_one():
    assert_close(sinusoidal_positional_encoding(1, 8)[0], torch.tensor([0.0, 1.0] * 4))


def test_sinusoidal_dot_product_depends_only_on_the_offset():
    table = sinusoidal_positional_encoding(64, 32)
    gram = table @ table.T
    for offset in (1, 3, 10):
        diagonal = torch.diagonal(gram, offset)
        assert_close(diagonal, torch.full_like(diagonal, diagonal[0].item()), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("context_length, d_model, message", [
    (10, 7, "even"), (0, 8, "context_length"), (10, 0, "d_model"), (10, 8.0, "d_model"), (True, 8, "context_length")])
def test_sinusoidal_bad_sizes(context_length, d_model, message):
    with pytest.raises(ValueError, match=message):
        sinusoidal_positional_encoding(context_length, d_model)


def test_sinusoidal_encoding_has_no_parameters_and_is_not_saved():
    encoding = PositionalEncoding(16, 8, "sinusoidal")
    assert list(encoding.parameters()) == []
    assert "table" not in encoding.state_dict()
    assert_close(encoding(5), sinusoidal_positional_encoding(16, 8)[:5])


def test_learned_encoding_is_trainable():
    encoding = PositionalEncoding(16, 8, "learned")
    assert [p.shape for p in encoding.parameters()] == [torch.Size([16, 8])]
    encoding(4).sum().backward()
    grad = encoding.table.grad
    assert grad[:4].abs().sum() > 0 and grad[4:].abs().sum() == 0


def test_bad_positional_kind():
    with pytest.raises(ValueError, match=r"'sinusoidal', 'learned', got 'rotary'"):
        InputEmbedding(10, 8, 16, positional="rotary")


@pytest.mark.parametrize("positional", ["sinusoidal", "learned"])
def test_input_embedding_is_token_plus_position(positional):
    torch.manual_seed(0)
    embed = InputEmbedding(vocab_size=11, d_model=8, context_length=16, positional=positional)
    ids = torch.tensor([[1, 2, 3, 4], [10, 0, 0, 5]])
    z = embed(ids)
    assert z.shape == (2, 4, 8)
    expected = embed.token.weight[ids] + embed.position.table[:4]
    assert_close(z, expected)
    assert_close(embed(ids[0]), expected[0])  # an unbatched sequence works too


def test_input_embedding_same_token_differs_by_position():
    embed = InputEmbedding(5, 8, 16)
    z = embed(torch.tensor([3, 3, 3]))
    assert not torch.allclose(z[0], z[1]) and not torch.allclose(z[1], z[2])


def test_input_embedding_parameter_counts():
    assert sum(p.numel() for p in InputEmbedding(100, 8, 16, "sinusoidal").parameters()) == 800
    assert sum(p.numel() for p in InputEmbedding(100, 8, 16, "learned").parameters()) == 800 + 128


def test_input_embedding_full_context_is_allowed():
    embed = InputEmbedding(5, 4, 6)
    assert embed(torch.zeros(2, 6, dtype=torch.long)).shape == (2, 6, 4)


def test_too_long_sequence():
    embed = InputEmbedding(5, 4, 256)
    with pytest.raises(ValueError, match=r"sequence of 300 tokens is longer than the context \(256\)"):
        embed(torch.zeros(1, 300, dtype=torch.long))
    with pytest.raises(ValueError, match="longer than the context"):
        embed.position(257)


@pytest.mark.parametrize("bad_id", [5, 70, -1])
def test_ids_outside_the_vocabulary(bad_id):
    embed = InputEmbedding(5, 4, 16)
    with pytest.raises(ValueError, match=rf"token id {bad_id} is out of range for a vocabulary of 5 tokens"):
        embed(torch.tensor([0, bad_id, 1]))


def test_empty_sequence():
    with pytest.raises(ValueError, match="empty sequence"):
        InputEmbedding(5, 4, 16)(torch.zeros(2, 0, dtype=torch.long))


@pytest.mark.parametrize("ids, error, message", [
    (torch.tensor([0.0, 1.0]), ValueError, "integer tensor"),
    (torch.tensor([True, False]), ValueError, "integer tensor"),
    (torch.zeros(1, 2, 3, dtype=torch.long), ValueError, "shape"),
    ([0, 1], TypeError, "torch.Tensor"),
])
def test_bad_ids(ids, error, message):
    with pytest.raises(error, match=message):
        InputEmbedding(5, 4, 16)(ids)


@pytest.mark.parametrize("sizes", [(0, 4, 16), (5, -1, 16), (5, 4, 0)])
def test_bad_sizes(sizes):
    with pytest.raises(ValueError, match="must be a positive integer"):
        InputEmbedding(*sizes)


def test_state_dict_round_trip_with_safetensors(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    embed = InputEmbedding(7, 4, 8, positional="learned")
    path = tmp_path / "embed.safetensors"
    safetensors_torch.save_file(embed.state_dict(), str(path))
    restored = InputEmbedding(7, 4, 8, positional="learned")
    restored.load_state_dict(safetensors_torch.load_file(str(path)))
    ids = torch.tensor([[1, 6, 0]])
    assert_close(restored(ids), embed(ids))
