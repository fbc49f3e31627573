import pytest

from book.data import DataError, load_corpus, load_text_file, split_text


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
