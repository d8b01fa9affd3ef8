"""The tokenizer: GPT-2's ids and text exactly, and streamed text that never splits a character."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models

from app.engine import tokenizer as tokenizer_module
from app.engine.errors import ModelLoadError
from app.engine.tokenizer import (
    EOS_TOKEN,
    PIECE_CHARS,
    RESOURCES_DIR,
    ByteTokenizer,
    IncrementalDecoder,
    Tokenizer,
    piece_cuts,
)

GPT2_DIR = RESOURCES_DIR / "gpt2"
FAST = settings(max_examples=150, deadline=None)
SPLIT_CHARACTERS = ["🙂", "🚀", "👨‍👩‍👧‍👦", "🇫🇷", "日本", "ẞ"]  # more than one token each

TEXTS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "It's, you're, we've, I'm, they'll, he'd: contractions.",
    "def f(x):\n    return x ** 2  # square\n\n\nclass A:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }",
    "1234567890 3.14159 1,000,000 -42 0x1F 1e-9",
    "a      b\t\t\tc\n\n\n\nd   ",
    "   leading spaces and trailing   ",
    "windows\r\nline\r\nendings\r\n",
    "non\u00a0breaking\u2009thin\u3000ideographic spaces",
    "café naïve Ångström façade jalapeño e\u0301",
    "日本語のテキストと中文文本，한국어 텍스트",
    "مرحبا بالعالم — नमस्ते दुनिया — Привет, мир",
    "emoji 🙂🚀 family 👨‍👩‍👧‍👦 flag 🇫🇷 skin 👍🏽",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "a <|endoftext|> b<|endoftext|><|endoftext|>\n",
    "<|endoftext| and <|endoftext and |endoftext|>",
    "control \x00\x01\x7f chars",
    "x" * 500,
    "\n",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝛼 and the private use \ue000",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.gpt2()


@pytest.fixture(scope="module")
def reference() -> Any:
    # Built from the same two files. Under transformers 5, GPT2TokenizerFast(vocab_file=...,
    # merges_file=...) silently ignores those names (they became vocab=, merges=) and gives an
    # empty tokenizer; from_pretrained on the folder works in 4.x and 5.x alike.
    from transformers import GPT2TokenizerFast

    ref = GPT2TokenizerFast.from_pretrained(str(GPT2_DIR))
    assert len(ref) == 50257
    assert ref("Hello world")["input_ids"] == [15496, 995]
    return ref


def _stream(tokenizer: Tokenizer | ByteTokenizer, ids: list[int]) -> list[str]:
    decoder = IncrementalDecoder(tokenizer)
    return [decoder.push(i) for i in ids] + [decoder.flush()]


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def test_known_gpt2_ids(tok: Tokenizer) -> None:
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" the") == [262]
    assert tok.encode("\n") == [198]
    assert tok.encode(EOS_TOKEN) == [50256]
    assert tok.eos_id == 50256
    assert tok.vocab_size == 50257


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_ids_and_text_equal_transformers(tok: Tokenizer, reference: Any, text: str) -> None:
    ids = tok.encode(text)
    assert ids == reference(text)["input_ids"]
    assert tok.decode(ids) == reference.decode(ids, clean_up_tokenization_spaces=False) == text


@FAST
@given(st.text())
def test_ids_equal_transformers_on_any_text(tok: Tokenizer, reference: Any, text: str) -> None:
    assert tok.encode(text) == reference(text)["input_ids"]


@FAST
@given(st.text())
def test_decode_inverts_encode(tok: Tokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert b"".join(tok.token_bytes(i) for i in ids) == text.encode("utf-8")


# Text where cuts are likely: spaces after letters and digits, runs of spaces, newlines,
# contractions, punctuation, accents and emoji, the end-of-text token.
PIECEWISE_TEXT = st.lists(st.sampled_from(
    ["a", "Z", "7", " ", " ", "  ", "\n", "\t", "'s", "'ll", "é", "🙂", ".", "?!", "—", "x y",
     EOS_TOKEN, "\u3000", "ß"]), min_size=1, max_size=60).map("".join)


@FAST
@given(PIECEWISE_TEXT | st.text(), st.integers(1, 12))
def test_encoding_in_pieces_gives_the_ids_of_the_whole(tok: Tokenizer, text: str,
                                                       every: int) -> None:
    cuts = piece_cuts(text, every)
    assert cuts == sorted(set(cuts)) and all(0 < c < len(text) for c in cuts)
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert [i for piece in pieces for i in tok.encode(piece)] == tok.encode(text)


def test_a_long_document_equals_transformers_and_typing_reencodes_only_its_end(
        tok: Tokenizer, reference: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    document = " ".join(f"Word{i}, it's line {i}.\n" for i in range(2000))  # ~50,000 chars
    assert tok.encode(document) == reference(document)["input_ids"]
    encoded: list[str] = []
    whole = tok._encode_whole
    monkeypatch.setattr(tok, "_encode_whole", lambda text: encoded.append(text) or whole(text))
    for typed in " The e", "n", "d":
        document += typed
        assert tok.encode(document) == reference(document)["input_ids"]
    assert len(encoded) == 3 and sum(map(len, encoded)) < 3 * 2 * PIECE_CHARS


def test_text_with_eos_splits_around_it(tok: Tokenizer) -> None:
    assert tok.encode("a<|endoftext|>b") == [*tok.encode("a"), 50256, *tok.encode("b")]


def test_lone_surrogate_encodes_as_replacement_char(tok: Tokenizer) -> None:
    assert tok.encode("a\ud800b") == tok.encode("a\ufffdb")


def test_every_token_text_is_its_decode(tok: Tokenizer) -> None:
    # The byte table the streaming path uses agrees with the library's decoder on every id.
    table = [tok.token_text(i) for i in range(tok.vocab_size)]
    assert table == [tok.decode([i]) for i in range(tok.vocab_size)]
    assert tok.token_bytes(50256) == b"<|endoftext|>"
    assert tok.token_bytes(15496) == b"Hello"
    assert tok.token_bytes(995) == b" world"


def test_partial_character_shows_as_replacement(tok: Tokenizer) -> None:
    ids = tok.encode("🙂")
    assert len(ids) > 1  # the emoji is split over tokens: the case streaming must handle
    assert "\ufffd" in tok.token_text(ids[0])
    assert tok.decode(ids[:1]) == tok.token_text(ids[0])


def test_emoji_appears_only_when_complete(tok: Tokenizer) -> None:
    ids = tok.encode("a🙂b")
    pieces = _stream(tok, ids)
    assert "".join(pieces) == "a🙂b"
    assert "🙂" in pieces
    assert all("\ufffd" not in p for p in pieces)


def test_flush_emits_unfinished_character_as_replacement(tok: Tokenizer) -> None:
    first = tok.encode("🙂")[0]
    decoder = IncrementalDecoder(tok)
    assert decoder.push(first) == ""
    assert decoder.flush() == tok.decode([first])
    assert decoder.push(tok.encode("ok")[0]) == "ok"  # flush starts afresh


@FAST
@given(st.text())
def test_streamed_text_equals_full_text(tok: Tokenizer, text: str) -> None:
    pieces = _stream(tok, tok.encode(text))
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces) or "\ufffd" in text
    assert not any(_has_surrogate(p) for p in pieces)


@pytest.fixture(scope="module")
def awkward_ids(tok: Tokenizer) -> st.SearchStrategy[int]:
    # Pieces of emoji and CJK characters, every token that is part of a character, and eos.
    assert all(len(tok.encode(text)) > 1 for text in SPLIT_CHARACTERS)
    split = [i for text in SPLIT_CHARACTERS for i in tok.encode(text)]
    partial = [i for i in range(tok.vocab_size) if "\ufffd" in tok.token_text(i)]
    return st.one_of(
        st.integers(0, tok.vocab_size - 1),
        st.sampled_from(split),
        st.sampled_from(partial),
        st.just(tok.eos_id),
    )


@FAST
@given(st.data())
def test_streamed_ids_equal_decode_for_any_ids(
    tok: Tokenizer, awkward_ids: st.SearchStrategy[int], data: st.DataObject
) -> None:
    # Arbitrary ids make invalid UTF-8 (stray continuation bytes, cut-off characters): the
    # stream must still add up to decode(), replacement chars included.
    ids = data.draw(st.lists(awkward_ids, max_size=24))
    pieces = _stream(tok, ids)
    assert "".join(pieces) == tok.decode(ids)
    assert not any(_has_surrogate(p) for p in pieces)


@FAST
@given(st.lists(st.integers(0, 50256), max_size=24))
def test_decode_equals_transformers_for_any_ids(
    tok: Tokenizer, reference: Any, ids: list[int]
) -> None:
    assert tok.decode(ids) == reference.decode(ids, clean_up_tokenization_spaces=False)


def test_ids_outside_vocabulary_are_refused(tok: Tokenizer) -> None:
    for bad in (-1, tok.vocab_size):
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.decode([15496, bad])
        with pytest.raises(ValueError, match="outside the vocabulary"):
            tok.token_bytes(bad)
        with pytest.raises(ValueError, match="outside the vocabulary"):
            IncrementalDecoder(tok).push(bad)


def test_ids_containing(tok: Tokenizer) -> None:
    newline = tok.ids_containing(["\n"])
    assert {198, 628} <= newline  # "\n", "\n\n"
    assert newline == {i for i in range(tok.vocab_size) if "\n" in tok.token_text(i)}
    both = tok.ids_containing(["\n", ":"])
    assert newline < both
    assert tok.encode(":")[0] in both
    assert tok.ids_containing(["\n", ""]) == newline  # empty strings are ignored
    assert tok.ids_containing([]) == frozenset()
    assert tok.ids_containing(iter(["\n"])) is newline  # cached


def test_resources_dir_points_at_the_shipped_vocab(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (RESOURCES_DIR / "gpt2" / "vocab.json").is_file()
    assert (RESOURCES_DIR / "gpt2" / "merges.txt").is_file()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", "/opt/bundle", raising=False)
    assert tokenizer_module._resources_dir() == Path("/opt/bundle") / "resources"


def test_save_then_from_dir_gives_the_same_tokenizer(tok: Tokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "tokenizer.json")
    loaded = Tokenizer.from_dir(tmp_path)
    text = TEXTS[13] + TEXTS[17]
    assert loaded.encode(text) == tok.encode(text)
    assert (loaded.eos_id, loaded.vocab_size) == (tok.eos_id, tok.vocab_size)
    assert Tokenizer.from_dir(GPT2_DIR).encode(text) == tok.encode(text)


def _one_line_load_error(folder: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        Tokenizer.from_dir(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder) in message
    return message


def test_from_dir_without_tokenizer_files(tmp_path: Path) -> None:
    (tmp_path / "vocab.json").write_text("{}")  # merges.txt missing
    message = _one_line_load_error(tmp_path)
    assert "tokenizer.json" in message
    assert "merges.txt" in message


def test_from_dir_with_broken_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')
    _one_line_load_error(tmp_path)


def test_from_dir_with_tokenizer_lacking_eos(tmp_path: Path) -> None:
    backend = HFTokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[]))
    backend.decoder = decoders.ByteLevel()
    backend.save(str(tmp_path / "tokenizer.json"))
    assert EOS_TOKEN in _one_line_load_error(tmp_path)


def test_from_dir_with_non_byte_level_tokenizer(tmp_path: Path) -> None:
    backend = HFTokenizer(models.BPE(vocab={"a": 0, EOS_TOKEN: 1}, merges=[]))
    backend.save(str(tmp_path / "tokenizer.json"))
    assert "byte-level" in _one_line_load_error(tmp_path)


def test_from_dir_with_unreadable_vocab(tmp_path: Path) -> None:
    (tmp_path / "vocab.json").write_text("not json")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    _one_line_load_error(tmp_path)


def test_byte_tokenizer_basics() -> None:
    byte_tok = ByteTokenizer()
    assert (byte_tok.eos_id, byte_tok.vocab_size) == (256, 257)
    assert byte_tok.encode("hi<|endoftext|>é") == [104, 105, 256, 0xC3, 0xA9]
    assert byte_tok.token_bytes(256) == b"<|endoftext|>"
    assert byte_tok.token_text(104) == "h"
    assert byte_tok.token_text(0xC3) == "\ufffd"
    assert byte_tok.ids_containing(["h", "<|"]) == {104, 256}
    with pytest.raises(ValueError, match="outside the vocabulary"):
        byte_tok.token_bytes(257)


@FAST
@given(st.text())
def test_byte_tokenizer_round_trips(text: str) -> None:
    byte_tok = ByteTokenizer()
    ids = byte_tok.encode(text)
    assert byte_tok.decode(ids) == text
    assert "".join(_stream(byte_tok, ids)) == text


@FAST
@given(st.lists(st.integers(0, 256), max_size=24))
def test_byte_tokenizer_streams_any_ids(ids: list[int]) -> None:
    byte_tok = ByteTokenizer()
    assert "".join(_stream(byte_tok, ids)) == byte_tok.decode(ids)


def test_vocab_file_is_gpt2s(tok: Tokenizer) -> None:
    vocab = json.loads((GPT2_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab) == 50257
    assert vocab["Hello"] == 15496
    assert vocab[EOS_TOKEN] == tok.eos_id


def test_models_with_the_same_tokenizer_files_share_one_parsed_tokenizer(tmp_path: Path) -> None:
    """Every GPT-2 size ships the same tokenizer: switching models must not parse it again
    (parsing holds the GIL and froze the window while a model loaded)."""
    from app.engine.tokenizer import RESOURCES_DIR

    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    gpt2 = Tokenizer.from_dir(RESOURCES_DIR / "gpt2")
    for folder in (first, second, other):
        folder.mkdir()
        gpt2.save(folder / "tokenizer.json")
    added = json.loads((other / "tokenizer.json").read_text("utf-8"))
    added["added_tokens"].append({"id": 50257, "content": "<scene>", "single_word": False,
                                  "lstrip": False, "rstrip": False, "normalized": False,
                                  "special": True})
    (other / "tokenizer.json").write_text(json.dumps(added), "utf-8")

    assert Tokenizer.shared(first) is Tokenizer.shared(second)
    different = Tokenizer.shared(other)
    assert different is not Tokenizer.shared(first)
    assert different.encode("a <scene>") == [64, 220, 50257]
    assert Tokenizer.shared(first).vocab_size == 50257 and different.vocab_size == 50258
