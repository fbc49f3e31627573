"""book.tokenize: character and byte-pair tokenizers, their round trips, errors and serialisation."""
import json

import pytest

from book.tokenize import PRETOKEN_PATTERN, BPETokenizer, CharTokenizer, UnknownCharacterError, pretokenize

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
        "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n")


# Character tokenizer

def test_char_vocabulary_is_sorted_unique_characters():
    tokenizer = CharTokenizer.from_text("banana")
    assert tokenizer.vocabulary == "abn"
    assert tokenizer.vocab_size == 3
    assert tokenizer.encode("nab") == [2, 0, 1]


def test_char_ids_follow_the_given_vocabulary_order():
    tokenizer = CharTokenizer("zyx")
    assert tokenizer.encode("xyz") == [2, 1, 0]
    assert tokenizer.decode([0, 1, 2]) == "zyx"


def test_char_round_trip():
    tokenizer = CharTokenizer.from_text(TEXT)
    assert tokenizer.decode(tokenizer.encode(TEXT)) == TEXT


def test_char_empty_text_encodes_to_nothing():
    tokenizer = CharTokenizer.from_text(TEXT)
    assert tokenizer.encode("") == []
    assert tokenizer.decode([]) == ""


def test_char_unknown_character_names_it_and_its_position():
    tokenizer = CharTokenizer.from_text("hello world")
    with pytest.raises(UnknownCharacterError) as error:
        tokenizer.encode("hello, world!")
    message = str(error.value)
    assert "','" in message and "'!'" in message
    assert "position 5" in message
    assert "CharTokenizer(vocab_size=8" in message
    assert isinstance(error.value, ValueError)


def test_char_decode_rejects_out_of_range_and_non_integer_ids():
    tokenizer = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"token id 3 at position 1 is out of range .* 0 to 2"):
        tokenizer.decode([0, 3])
    with pytest.raises(ValueError, match="out of range"):
        tokenizer.decode([-1])
    with pytest.raises(ValueError, match="must be integers"):
        tokenizer.decode([1.0])


def test_char_decode_accepts_tensor_and_numpy_integers():
    torch = pytest.importorskip("torch")
    np = pytest.importorskip("numpy")
    tokenizer = CharTokenizer("abc")
    assert tokenizer.decode(torch.tensor([2, 0])) == "ca"
    assert tokenizer.decode(np.array([1, 1])) == "bb"


@pytest.mark.parametrize("vocabulary, message", [("", "empty"), ("abca", "repeats")])
def test_char_bad_vocabulary(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        CharTokenizer(vocabulary)


def test_char_from_empty_text():
    with pytest.raises(ValueError, match="empty text"):
        CharTokenizer.from_text("")


def test_char_serialisation_round_trip():
    tokenizer = CharTokenizer.from_text(TEXT)
    restored = CharTokenizer.from_dict(json.loads(json.dumps(tokenizer.to_dict())))
    assert restored.vocabulary == tokenizer.vocabulary
    assert restored.encode(TEXT) == tokenizer.encode(TEXT)


def test_char_from_dict_rejects_other_descriptions():
    with pytest.raises(ValueError, match="not a character tokenizer"):
        CharTokenizer.from_dict({"type": "bpe", "alphabet": "ab", "merges": []})


# Pre-tokenization

@pytest.mark.parametrize("text", [TEXT, "", "  two  spaces\t\ttabs\n\n\nend ", "o'er 'tis ho_ho 1599... Ça, 東京!"])
def test_pretokenize_covers_the_text(text):
    assert "".join(pretokenize(text)) == text


def test_pretokenize_keeps_leading_space_with_words():
    assert pretokenize("Speak, speak.\n\nAll") == ["Speak", ",", " speak", ".", "\n\n", "All"]
    assert pretokenize("a  b") == ["a", " ", " b"]


def test_pretokenize_matches_the_tokenizers_library():
    tokenizers = pytest.importorskip("tokenizers")
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(PRETOKEN_PATTERN), behavior="isolated")
    text = TEXT + "  o'er 'tis ho_ho 1599...\tÇa, 東京!\n"
    assert [piece for piece, _ in split.pre_tokenize_str(text)] == pretokenize(text)


# Byte-pair encoding

@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(TEXT * 3, num_merges=40, min_frequency=2)


def test_bpe_first_merge_is_the_most_frequent_pair():
    # pre-tokens "ab", " ab", " ab", " cd": ("a", "b") occurs 3 times, (" ", "a") twice
    tokenizer = BPETokenizer.train("ab ab ab cd", num_merges=1)
    assert tokenizer.merges == [("a", "b")]


def test_bpe_ties_go_to_the_smaller_pair_of_ids():
    # "xy" and "yz" both occur twice; ids: x=0, y=1, z=2, so (x, y) < (y, z) wins
    tokenizer = BPETokenizer.train("xyz xyz", num_merges=1)
    assert tokenizer.alphabet == " xyz"
    assert tokenizer.merges == [("x", "y")]
    assert tokenizer.merge_counts == [2] and tokenizer.merge_ties == [1]


def test_bpe_merge_counts_never_increase(bpe):
    assert len(bpe.merge_counts) == len(bpe.merge_ties) == len(bpe.merges)
    assert all(a >= b for a, b in zip(bpe.merge_counts, bpe.merge_counts[1:]))


def test_bpe_vocab_grows_by_one_per_merge(bpe):
    assert len(bpe.merges) == 40
    assert bpe.vocab_size == len(bpe.alphabet) + 40
    for left, right in bpe.merges:
        assert left + right in bpe.vocab
    assert all(bpe.id_to_token[i] == token for token, i in bpe.vocab.items())


def test_bpe_round_trip_and_compression(bpe):
    ids = bpe.encode(TEXT)
    assert bpe.decode(ids) == TEXT
    assert len(ids) < len(TEXT)


def test_bpe_repeated_pairs_merge_left_to_right():
    tokenizer = BPETokenizer.train("aaa aaa aaa", num_merges=1)
    assert tokenizer.merges == [("a", "a")]
    assert [tokenizer.id_to_token[i] for i in tokenizer.encode("aaa")] == ["aa", "a"]


def test_bpe_stops_at_min_frequency():
    tokenizer = BPETokenizer.train("abc", num_merges=10, min_frequency=2)
    assert tokenizer.merges == []
    assert tokenizer.encode("cab") == [2, 0, 1]


def test_bpe_empty_text(bpe):
    assert bpe.encode("") == []
    assert bpe.decode([]) == ""
    with pytest.raises(ValueError, match="empty text"):
        BPETokenizer.train("", num_merges=5)


def test_bpe_negative_merges():
    with pytest.raises(ValueError, match="num_merges"):
        BPETokenizer.train("abc", num_merges=-1)


def test_bpe_unknown_character(bpe):
    with pytest.raises(UnknownCharacterError, match=r"'Z'.*position 4.*BPETokenizer"):
        bpe.encode("Fir Zed")


def test_bpe_extra_alphabet_makes_characters_encodable():
    tokenizer = BPETokenizer.train("abab", num_merges=1, alphabet="z")
    assert tokenizer.decode(tokenizer.encode("zab")) == "zab"


def test_bpe_out_of_range_id(bpe):
    with pytest.raises(ValueError, match=f"token id {bpe.vocab_size} .*out of range"):
        bpe.decode([0, bpe.vocab_size])


def test_bpe_serialisation_round_trip(bpe):
    data = json.loads(json.dumps(bpe.to_dict()))
    restored = BPETokenizer.from_dict(data)
    assert restored.merges == bpe.merges
    assert restored.vocab == bpe.vocab
    assert restored.encode(TEXT) == bpe.encode(TEXT)


def test_bpe_from_dict_rejects_bad_descriptions(bpe):
    with pytest.raises(ValueError, match="not a BPE tokenizer"):
        BPETokenizer.from_dict({"type": "char", "vocabulary": "ab"})
    with pytest.raises(ValueError, match="pre-tokenization pattern"):
        BPETokenizer.from_dict({**bpe.to_dict(), "pattern": r"\w+"})
    with pytest.raises(ValueError, match="not a token yet"):
        BPETokenizer("ab", [("a", "c")])
    with pytest.raises(ValueError, match="code-point order"):
        BPETokenizer("ba", [])


def test_bpe_agrees_with_the_tokenizers_library():
    tokenizers = pytest.importorskip("tokenizers")
    text = TEXT * 2 + "Second Citizen:\nOne word, good citizens.\n"
    ours = BPETokenizer.train(text, num_merges=60, min_frequency=2)
    reference = tokenizers.Tokenizer(tokenizers.models.BPE())
    reference.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex(PRETOKEN_PATTERN), behavior="isolated")
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=len(ours.alphabet) + 60, min_frequency=2,
                                             initial_alphabet=list(ours.alphabet), show_progress=False)
    reference.train_from_iterator([text], trainer=trainer)
    model = json.loads(reference.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    assert merges == ours.merges
    assert model["vocab"] == ours.vocab
    assert reference.encode(TEXT).ids == ours.encode(TEXT)
