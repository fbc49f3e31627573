"""The Hugging Face export: same logits, same greedy text, the seed's pipeline runs on it."""
import os
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from book.applications import SHIPPED_CHECKPOINT
from book.checkpoint import save_checkpoint
from book.generate import complete
from book.hf import ExportError, export, fast_tokenizer, stop_at_context, text_generation_pipeline, to_gpt2
from book.model import GPT, GPTConfig
from book.tokenize import CharTokenizer

transformers = pytest.importorskip("transformers")

SHIPPED = str(SHIPPED_CHECKPOINT)
PROMPT = "ROMEO:\nO"


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=180,
                          env={"TQDM_DISABLE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                               "HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("hf") / "shakespeare"
    result = run("book.hf", "export", "--checkpoint", SHIPPED, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("bias", [True, False])
def test_logits_match_the_book_model(bias):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=16, n_layer=2, n_head=2, d_model=16, bias=bias)).eval()
    if bias:  # random biases, so that a misplaced one shows
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                torch.nn.init.normal_(param, std=0.1)
    hf_model = to_gpt2(model)
    idx = torch.randint(0, 11, (3, 16))
    with torch.no_grad():
        torch.testing.assert_close(hf_model(idx).logits, model(idx)[0])


def test_tokenizer_round_trip_and_ids():
    chars = CharTokenizer("\n !,.:ABCabc")
    fast = fast_tokenizer(chars, 32)
    text = "Abc, cab!\n  A."
    assert fast(text).input_ids == chars.encode(text)
    assert fast.decode(chars.encode(text)) == text
    assert fast.model_max_length == 32


def test_unknown_characters_are_an_error_not_dropped():
    chars = CharTokenizer("\n !,.:ABCabc")
    fast = fast_tokenizer(chars, 32)
    for text in ["Abc\u00e9 cab", "\u20ac", "cab\u00e9"]:  # é and €, outside the vocabulary
        with pytest.raises(Exception, match="not found in the vocabulary"):
            fast(text)
        with pytest.raises(Exception, match="not found in the vocabulary"):
            fast.encode(text)
    assert fast.decode(fast("Abc cab").input_ids) == "Abc cab"  # known text is unaffected


def test_truncation_keeps_the_end_of_a_long_prompt():
    chars = CharTokenizer("abcde")
    fast = fast_tokenizer(chars, 4)
    assert fast("abcdeab", truncation=True).input_ids == chars.encode("deab")


def test_exported_folder_loads_offline_and_matches(exported):
    from book.checkpoint import load_checkpoint

    files = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    model = transformers.GPT2LMHeadModel.from_pretrained(exported)
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
    assert model.config.activation_function == "gelu"
    ours = load_checkpoint(SHIPPED)
    text = "JULIET:\nWherefore art thou Romeo?\n"
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids[0].tolist() == ours.tokenizer.encode(text)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ours.model(ids)[0])


def test_exported_generation_config_stops_at_the_context(exported):
    config = transformers.GenerationConfig.from_pretrained(exported)
    assert config.max_length == 128 and config.do_sample is False  # the shipped model's context


def test_greedy_generate_equals_book_generate(exported):
    model = transformers.GPT2LMHeadModel.from_pretrained(exported)
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported)
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    output = model.generate(ids, max_length=len(PROMPT) + 40, do_sample=False)
    hf_text = tokenizer.decode(output[0])
    result = run("book.generate", "--checkpoint", SHIPPED, "--prompt", PROMPT, "--greedy", "--max-new-tokens", "40")
    assert result.returncode == 0, result.stderr
    assert hf_text == result.stdout[:-1]  # print adds one newline
    assert len(hf_text) == len(PROMPT) + 40  # max_length counts the prompt


def test_seed_pipeline_pattern(exported):
    generator = transformers.pipeline("text-generation", model=str(exported))
    transformers.set_seed(0)
    sampled = generator("Hello, my name is", max_length=50, do_sample=True)[0]["generated_text"]
    assert sampled.startswith("Hello, my name is") and len(sampled) == 50
    greedy = generator(PROMPT, max_new_tokens=20, do_sample=False)[0]["generated_text"]
    assert greedy.startswith(PROMPT) and len(greedy) == len(PROMPT) + 20


def test_clean_error_for_missing_checkpoint(tmp_path):
    result = run("book.hf", "export", "--checkpoint", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "nowhere" in lines[0], result.stderr


def test_refuses_a_non_empty_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = run("book.hf", "export", "--checkpoint", SHIPPED, "--out", str(out))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--force" in lines[0], result.stderr
    assert (out / "notes.txt").read_text() == "keep me"


def test_force_overwrites(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, context_length=8, n_layer=1, n_head=1, d_model=8))
    save_checkpoint(tmp_path / "ck", model, CharTokenizer("abcde"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export(tmp_path / "ck", out)
    export(tmp_path / "ck", out, force=True)
    assert (out / "model.safetensors").is_file()


@pytest.mark.parametrize("activation", ["gelu_new", "gelu"])
def test_a_transformers_gpt2_imports_with_identical_logits_and_text(activation):
    from transformers import GPT2Config, GPT2LMHeadModel

    from book.generate import generate
    from book.hf import from_gpt2

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_positions=32, n_embd=24, n_layer=2, n_head=3,
                        activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    theirs = GPT2LMHeadModel(config).eval()
    ours = from_gpt2(theirs)
    assert ours.config.activation == activation
    ids = torch.randint(0, 50, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[0], theirs(ids).logits, atol=1e-5, rtol=1e-5)
    prompt = ids[0, :5]
    expected = theirs.generate(prompt[None], max_new_tokens=12, do_sample=False, pad_token_id=0)[0]
    assert torch.equal(generate(ours, prompt, max_new_tokens=12, do_sample=False), expected)


def test_gpt2_import_refuses_what_the_book_model_cannot_compute():
    from transformers import GPT2Config, GPT2LMHeadModel

    from book.hf import ExportError, from_gpt2

    config = GPT2Config(vocab_size=20, n_positions=8, n_embd=8, n_layer=1, n_head=2, activation_function="relu")
    with pytest.raises(ExportError, match="activation 'relu'"):
        from_gpt2(GPT2LMHeadModel(config))


def test_a_bpe_checkpoint_exports_with_the_same_ids(tmp_path):
    from book.checkpoint import load_checkpoint, tokenizer_from_dict
    from book.tokenize import BPETokenizer

    text = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 8
    tokenizer = BPETokenizer.train(text, 40)
    assert type(tokenizer_from_dict(tokenizer.to_dict())) is BPETokenizer
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, context_length=16, n_layer=1, n_head=2, d_model=16))
    save_checkpoint(tmp_path / "ck", model, tokenizer)
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.tokenizer.merges == tokenizer.merges
    export(tmp_path / "ck", tmp_path / "hf")
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    sample = "Whether 'tis nobler, or not: the question\n\nTo  be"
    assert fast(sample).input_ids == tokenizer.encode(sample)
    assert fast.decode(tokenizer.encode(sample)) == sample


def test_unknown_tokenizer_types_are_refused():
    from book.checkpoint import tokenizer_from_dict

    for description in ({"type": "morse"}, {"vocabulary": "abc"}, ["char"]):
        with pytest.raises(ValueError, match="unknown tokenizer type"):
            tokenizer_from_dict(description)


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A random 8-position character model, exported: prompts reach its context quickly."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=6, context_length=8, n_layer=1, n_head=2, d_model=16)).eval()
    tokenizer = CharTokenizer("abcde ")
    folder = tmp_path_factory.mktemp("hf-small")
    save_checkpoint(folder / "ck", model, tokenizer)
    export(folder / "ck", folder / "hf")
    return model, tokenizer, folder / "hf"


def test_the_plain_pipeline_stops_at_the_context_by_default(small_export):
    model, tokenizer, folder = small_export
    generator = transformers.pipeline("text-generation", model=str(folder))
    # Without the exported max_length the pipeline would ask for 256 new tokens: an IndexError.
    text = generator("abc")[0]["generated_text"]
    assert len(text) == 8 and text.startswith("abc")
    assert text == complete(model, tokenizer, "abc", max_length=8, do_sample=False)
    sampled = generator("abc", do_sample=True)[0]["generated_text"]
    assert len(sampled) == 8
    with pytest.raises(ValueError, match="`max_length` is set to 8"):  # a prompt that fills the context
        generator("abcdeabcde")


@pytest.mark.parametrize("options", [{"max_new_tokens": 30}, {"max_length": 30}, {}, {"do_sample": True}])
def test_the_helper_pipeline_generates_up_to_the_context(small_export, options):
    model, tokenizer, folder = small_export
    generator = text_generation_pipeline(folder)
    text = generator("abc", **options)[0]["generated_text"]
    assert text.startswith("abc") and len(text) == 8  # 30 asked, the context allows 8
    if not options.get("do_sample"):
        assert text == complete(model, tokenizer, "abc", max_length=8, do_sample=False)


def test_the_helper_pipeline_leaves_requests_within_the_context_alone(small_export):
    model, tokenizer, folder = small_export
    text = text_generation_pipeline(folder)("ab", max_new_tokens=3)[0]["generated_text"]
    assert text == complete(model, tokenizer, "ab", max_new_tokens=3, do_sample=False)


def test_the_helper_pipeline_continues_the_end_of_a_long_prompt(small_export):
    model, tokenizer, folder = small_export
    prompt = "abcde abcde ab"  # 14 characters, context 8
    text = text_generation_pipeline(folder)(prompt, max_new_tokens=5)[0]["generated_text"]
    assert text.startswith(prompt) and len(text) == len(prompt) + 1  # the prompt's last 7, plus one
    assert text[-1] == complete(model, tokenizer, prompt[-7:], max_new_tokens=1, do_sample=False)[-1]


def test_the_helper_pipeline_refuses_unknown_characters(small_export):
    generator = text_generation_pipeline(small_export[2])
    with pytest.raises(Exception, match="not found in the vocabulary"):
        generator("ab\u00e9c", max_new_tokens=2)


def test_stop_at_context_with_generate(small_export):
    model, tokenizer, folder = small_export
    hf_model = transformers.GPT2LMHeadModel.from_pretrained(folder)
    ids = torch.tensor([tokenizer.encode("abcd")])
    output = hf_model.generate(ids, max_new_tokens=50, do_sample=False, stopping_criteria=stop_at_context(8))
    assert output.shape == (1, 8)
    assert tokenizer.decode(output[0].tolist()) == complete(model, tokenizer, "abcd", max_length=8, do_sample=False)


def test_a_bpe_export_refuses_unknown_characters(tmp_path):
    from book.tokenize import BPETokenizer

    tokenizer = BPETokenizer.train("to be or not to be, that is the question\n" * 4, 10)
    fast = fast_tokenizer(tokenizer, 16)
    assert fast("not to be").input_ids == tokenizer.encode("not to be")
    for text in ["to b\u00e9", "\u20ac to be", "Be"]:  # é, € and a capital B are not in its alphabet
        with pytest.raises(Exception, match="not found in the vocabulary"):
            fast(text)
