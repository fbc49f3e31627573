import numpy as np
import pytest

from book import data
from book.data import (
    CharIds,
    DataError,
    encode_text,
    encode_text_file,
    iter_text_file,
    load_corpus,
    load_text_file,
    split_ids,
    split_text,
    token_dtype,
)
from book.tokenize import BPETokenizer, CharTokenizer, UnknownCharacterError


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_corpus_has_every_work(corpus):
    assert len(corpus) == 42
    assert len(corpus.plays()) == 37 and len(corpus.poems()) == 5
    assert 5_000_000 < len(corpus.text) < 5_100_000
    assert corpus["hamlet"].title.startswith("Hamlet")
    assert corpus.text.isascii()


def test_unknown_work_names_close_matches(corpus):
    with pytest.raises(DataError, match="did you mean hamlet"):
        corpus["hamlett"]


def test_speeches_of_a_play(corpus):
    speeches = corpus["hamlet"].speeches()
    assert speeches[0].speaker == "Ber" and speeches[0].text == "Who's there?"
    assert list(corpus["hamlet"].speakers())[0] == "Ham"
    assert all("[" not in s.text.splitlines()[0][:1] for s in speeches)
    # Names without a full stop (A Midsummer Night's Dream prints "THESEUS").
    assert "THESEUS" in corpus["midsummer_nights_dream"].speakers()
    assert corpus["sonnets"].speeches() == []


def test_speeches_cover_most_of_every_play(corpus):
    for play in corpus.plays():
        spoken = sum(len(s.text) for s in play.speeches())
        assert spoken / len(play.text) > 0.7, play.name


def test_split_is_deterministic_and_disjoint(corpus):
    train, val = corpus.split(0.1)
    assert (train, val) == corpus.split(0.1)
    assert 0.09 < len(val) / len(corpus.text) < 0.11
    assert train.endswith("\n")


def test_split_text_cuts_on_a_line_boundary():
    train, val = split_text("one\ntwo\nthree\nfour\nfive\n", 0.3)
    assert train + val == "one\ntwo\nthree\nfour\nfive\n"
    assert train.endswith("\n") and not val.startswith("\n")


@pytest.mark.parametrize("fraction", [0, 1, -0.5, 2])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(DataError, match="val_fraction"):
        split_text("some text\nmore text\n", fraction)


def test_split_rejects_text_too_short():
    with pytest.raises(DataError, match="too short"):
        split_text("x", 0.5)


def test_load_text_file(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_bytes("\ufeffCaf\u00e9 society\r\n".encode("utf-8"))
    assert load_text_file(path) == "Caf\u00e9 society\n"


def test_load_text_file_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_text_file(tmp_path / "absent.txt")
    with pytest.raises(DataError, match="not a regular file"):
        load_text_file(tmp_path)
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(DataError, match="empty"):
        load_text_file(tmp_path / "empty.txt")
    (tmp_path / "blob.bin").write_bytes(b"\x89PNG\x00\x01")
    with pytest.raises(DataError, match="binary"):
        load_text_file(tmp_path / "blob.bin")
    (tmp_path / "latin1.txt").write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_text_file(tmp_path / "latin1.txt")


def test_a_file_read_in_pieces_is_the_whole_text(tmp_path):
    """Pieces cut inside a character of several bytes, or between the two halves of a Windows line end."""
    raw = ("\ufeffcaf\u00e9 \U0001F600\r\nok\r\n" * 7).encode("utf-8")
    path = tmp_path / "pieces.txt"
    path.write_bytes(raw)
    whole = raw.decode("utf-8").lstrip("\ufeff").replace("\r\n", "\n")
    for read_bytes in (1, 2, 3, 5, 7, 64, 1 << 20):
        assert "".join(iter_text_file(path, read_bytes)) == whole, read_bytes
    assert load_text_file(path) == whole


def test_an_undecodable_byte_is_found_at_its_offset_whatever_the_pieces(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes("caf\u00e9 ".encode() * 10 + b"\xff rest")
    for read_bytes in (1, 4, 1000):
        with pytest.raises(DataError, match="offset 60"):
            "".join(iter_text_file(path, read_bytes))


def test_token_ids_take_one_byte_each_up_to_256_tokens_then_two():
    assert [token_dtype(n) for n in (2, 256, 257, 65536, 65537)] == [np.uint8, np.uint8, np.uint16, np.uint16,
                                                                       np.uint32]
    wide = "".join(chr(0x4E00 + i) for i in range(300))
    for text, dtype in (("to be or not to be\n", np.uint8), (wide * 2, np.uint16)):
        tokenizer = CharTokenizer.from_text(text)
        ids = encode_text(tokenizer, text)
        assert ids.dtype == dtype and ids.tolist() == tokenizer.encode(text)


def test_a_text_file_is_encoded_compactly_and_exactly(tmp_path, monkeypatch):
    text = "Now is the winter of our discontent\nMade glorious summer\u2014by this sun of York;\n" * 50
    path = tmp_path / "richard.txt"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(data, "READ_BYTES", 97)  # many pieces
    ids, tokenizer = encode_text_file(path)
    assert tokenizer.vocabulary == "".join(sorted(set(text)))
    assert ids.dtype == np.uint8 and not isinstance(ids, np.memmap) and ids.tolist() == tokenizer.encode(text)
    monkeypatch.setattr(data, "MEMMAP_BYTES", 1000)  # this one is "large": memory-mapped
    mapped, same = encode_text_file(path, tokenizer)
    assert isinstance(mapped, np.memmap) and same is tokenizer and np.array_equal(mapped, ids)
    with pytest.raises(UnknownCharacterError, match="'\u2014'.*first at position 56"):
        encode_text_file(path, CharTokenizer("".join(sorted(set(text) - {"\u2014"}))))


def test_a_bpe_tokenizer_encodes_a_file_too(tmp_path):
    text = "the cat sat on the mat\n" * 20
    path = tmp_path / "cats.txt"
    path.write_text(text)
    tokenizer = BPETokenizer.train(text, 10)
    ids, same = encode_text_file(path, tokenizer)
    assert same is tokenizer and ids.dtype == np.uint8 and ids.tolist() == tokenizer.encode(text)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3, 0.5])
def test_split_ids_cuts_where_split_text_cuts(fraction):
    text = "".join(f"line {i} {'x' * (i % 7)}\n" for i in range(300))
    tokenizer = CharTokenizer.from_text(text)
    train_ids, val_ids = split_ids(encode_text(tokenizer, text), fraction, tokenizer.char_to_id["\n"])
    train_text, val_text = split_text(text, fraction)
    assert tokenizer.decode(train_ids.tolist()) == train_text and tokenizer.decode(val_ids.tolist()) == val_text
    with pytest.raises(DataError, match="too short"):
        split_ids(encode_text(tokenizer, "x"), fraction, None)


def test_unknown_characters_are_named_with_their_position():
    with pytest.raises(UnknownCharacterError, match=r"2 character\(s\).*'x', 'y'.*first at position 12"):
        CharIds("abc")("abxcy", offset=10)
