"""Text <-> token ids: GPT-2's byte-level BPE (through `tokenizers`) and a byte tokenizer for fakes.

Every token stands for a run of raw bytes, not necessarily whole UTF-8 characters (an emoji is
often two or three tokens). `token_bytes` gives those bytes; `IncrementalDecoder` turns a stream
of ids into text that never contains half a character.
"""

from __future__ import annotations

import codecs
import hashlib
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as _HFTokenizer

from app.engine.errors import ModelLoadError, first_line


def _resources_dir() -> Path:
    if getattr(sys, "frozen", False):  # PyInstaller unpacks data files under sys._MEIPASS
        return Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


RESOURCES_DIR: Path = _resources_dir()
GPT2_TOKENIZER_DIR: Path = RESOURCES_DIR / "gpt2"  # vocab.json + merges.txt, MIT
EOS_TOKEN = "<|endoftext|>"
# Long texts are encoded in pieces of about this many characters, each remembered: typing at
# the end of a 3,000-token document re-encodes one piece instead of all 13,000 characters
# (5.7 ms a keystroke, growing with the document).
PIECE_CHARS = 2048
REMEMBERED_PIECES = 512
SHARED_TOKENIZERS = 4  # distinct tokenizer files kept parsed (Tokenizer.shared), newest first
_SHARED: OrderedDict[str, Tokenizer] = OrderedDict()
_SHARED_LOCK = threading.Lock()


def _byte_level_chars() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte (its `bytes_to_unicode`), inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    codepoints = {b: b for b in printable}
    shifted = 0
    for byte in range(256):
        if byte not in codepoints:
            codepoints[byte] = 256 + shifted
            shifted += 1
    return {chr(cp): byte for byte, cp in codepoints.items()}


_CHAR_TO_BYTE = _byte_level_chars()


def _piece_bytes(piece: str) -> bytes:
    # As the ByteLevel decoder does: a piece made only of stand-in characters is those bytes;
    # any other piece (an added token such as "<|endoftext|>" in some files) is its UTF-8.
    try:
        return bytes(_CHAR_TO_BYTE[c] for c in piece)
    except KeyError:
        return piece.encode("utf-8")


def _check_id(token_id: int, vocab_size: int) -> None:
    if not 0 <= token_id < vocab_size:
        raise ValueError(f"token id {token_id} is outside the vocabulary (0..{vocab_size - 1})")


class _TokenTable:
    """Per-token bytes and display text, shared by both tokenizers. Subclasses fill
    `_bytes` (one entry per id) and call `_finish_table()`."""

    vocab_size: int
    _bytes: list[bytes]

    def _finish_table(self) -> None:
        self._texts = [b.decode("utf-8", errors="replace") for b in self._bytes]
        self._containing: dict[frozenset[str], frozenset[int]] = {}

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes one token stands for (possibly part of a UTF-8 character)."""
        _check_id(token_id, self.vocab_size)
        return self._bytes[token_id]

    def token_text(self, token_id: int) -> str:
        """A display form of one token: U+FFFD where it holds part of a character."""
        _check_id(token_id, self.vocab_size)
        return self._texts[token_id]

    def ids_containing(self, substrings: Iterable[str]) -> frozenset[int]:
        """Ids of the tokens whose own text contains any of `substrings` (empty ones ignored)."""
        return _ids_containing(self._texts, self._containing, substrings)


class Tokenizer(_TokenTable):
    """GPT-2 byte-level BPE through the `tokenizers` library."""

    def __init__(self, backend: _HFTokenizer, source: Path) -> None:
        if not isinstance(backend.decoder, decoders.ByteLevel):
            raise ModelLoadError(
                f"The tokenizer in {source} is not byte-level BPE; "
                "use the tokenizer.json that came with a GPT-2 model."
            )
        eos_id = backend.token_to_id(EOS_TOKEN)
        if eos_id is None:
            raise ModelLoadError(
                f"The tokenizer in {source} has no {EOS_TOKEN} token; "
                "use the tokenizer.json that came with a GPT-2 model."
            )
        backend.no_truncation()
        backend.no_padding()
        self._backend = backend
        self._pieces: OrderedDict[str, list[int]] = OrderedDict()
        self._pieces_lock = threading.Lock()
        self._in_pieces = _splits_cleanly(backend)
        self.eos_id: int = eos_id
        vocab = backend.get_vocab(with_added_tokens=True)
        self.vocab_size: int = max(vocab.values()) + 1
        self._bytes = [b""] * self.vocab_size
        for piece, token_id in vocab.items():
            self._bytes[token_id] = _piece_bytes(piece)
        self._finish_table()

    @classmethod
    def shared(cls, folder: Path) -> Tokenizer:
        """from_dir, but one Tokenizer per distinct file content in this process: every GPT-2
        size has the same tokenizer, so switching models parses it once. Parsing holds the
        GIL (tokenizers' from_file: 64–175 ms for GPT-2's tokenizer.json), which froze the
        window while a model loaded."""
        files = _tokenizer_files(Path(folder))
        if files is None:
            return cls.from_dir(folder)  # which says what is missing
        digest = hashlib.sha256()
        try:
            for file in files:
                digest.update(file.read_bytes())
                digest.update(b"\0")
        except OSError:
            return cls.from_dir(folder)  # which words the error
        key = digest.hexdigest()
        with _SHARED_LOCK:
            found = _SHARED.get(key)
            if found is not None:
                _SHARED.move_to_end(key)
                return found
        tokenizer = cls.from_dir(folder)
        with _SHARED_LOCK:
            _SHARED[key] = tokenizer
            while len(_SHARED) > SHARED_TOKENIZERS:
                _SHARED.popitem(last=False)
        return tokenizer

    @classmethod
    def gpt2(cls) -> Tokenizer:
        """GPT-2's tokenizer from the vocab.json and merges.txt shipped in resources/gpt2."""
        return cls.from_dir(GPT2_TOKENIZER_DIR)

    @classmethod
    def from_dir(cls, folder: Path) -> Tokenizer:
        """The tokenizer.json in `folder`, else its vocab.json + merges.txt."""
        folder = Path(folder)
        files = _tokenizer_files(folder)
        if files is not None and len(files) == 1:
            return cls(_load(lambda: _HFTokenizer.from_file(str(files[0])), folder), folder)
        if files is not None:
            vocab, merges = files
            return cls(_load(lambda: _from_vocab_merges(vocab, merges), folder), folder)
        raise ModelLoadError(
            f"No tokenizer in {folder}: put the model's tokenizer.json there, "
            "or GPT-2's vocab.json and merges.txt (copies ship in resources/gpt2)."
        )

    def save(self, path: Path) -> None:
        """Write the whole tokenizer as one tokenizer.json."""
        self._backend.save(str(path))

    def encode(self, text: str) -> list[int]:
        """GPT-2's ids for `text`; "<|endoftext|>" in the text becomes `eos_id`.

        A lone surrogate (no UTF-8 form) is encoded as U+FFFD instead of failing. Long texts
        go in pieces cut where GPT-2's pre-tokenizer always cuts (see `piece_cuts`), so the
        ids are the same as in one go; pieces seen before are not encoded again.
        """
        if not self._in_pieces or len(text) <= PIECE_CHARS:
            return self._encode_whole(text)
        ids: list[int] = []
        cuts = piece_cuts(text, PIECE_CHARS)
        for start, end in zip([0, *cuts], [*cuts, len(text)], strict=True):
            ids += self._encode_piece(text[start:end])
        return ids

    def _encode_piece(self, piece: str) -> list[int]:
        with self._pieces_lock:
            ids = self._pieces.get(piece)
            if ids is not None:
                self._pieces.move_to_end(piece)
                return ids
        ids = self._encode_whole(piece)
        with self._pieces_lock:
            self._pieces[piece] = ids
            if len(self._pieces) > REMEMBERED_PIECES:
                self._pieces.popitem(last=False)
        return ids

    def _encode_whole(self, text: str) -> list[int]:
        try:
            encoding = self._backend.encode(text, add_special_tokens=False)
        except TypeError:  # how the library refuses a str it cannot make UTF-8 of
            encoding = self._backend.encode(
                _without_lone_surrogates(text), add_special_tokens=False
            )
        return encoding.ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`; bytes that are not valid UTF-8 become U+FFFD, as in Hugging Face."""
        ids = [int(i) for i in ids]
        for token_id in ids:
            _check_id(token_id, self.vocab_size)
        return self._backend.decode(ids, skip_special_tokens=False)


def _load(read: Callable[[], _HFTokenizer], folder: Path) -> _HFTokenizer:
    try:
        return read()
    except Exception as error:  # the library raises plain Exception with multi-line text
        raise ModelLoadError(
            f"Cannot read the tokenizer in {folder} ({first_line(error)}); replace it with the "
            "tokenizer.json, or vocab.json and merges.txt, of a GPT-2 model."
        ) from error


def has_tokenizer_files(folder: Path) -> bool:
    """Whether Tokenizer.from_dir(folder) has files to read."""
    return _tokenizer_files(folder) is not None


def _tokenizer_files(folder: Path) -> list[Path] | None:
    """[tokenizer.json], else [vocab.json, merges.txt], else None: what from_dir reads."""
    if (folder / "tokenizer.json").is_file():
        return [folder / "tokenizer.json"]
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    return [vocab, merges] if vocab.is_file() and merges.is_file() else None


# A space or newline right after a letter or digit: where encoding can be cut (see piece_cuts).
_CUT = re.compile(r"(?<=[^\W_])[ \n]")


def piece_cuts(text: str, every: int) -> list[int]:
    """Positions, about `every` characters apart, where `text` can be encoded in pieces.

    Each is a space or newline right after a letter or digit. No pattern of GPT-2's
    pre-tokenizer regex ('s|'t|…| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+)
    runs from a non-space into whitespace, so a pre-token always ends there; and the regex reads
    from left to right, looking ahead only, so what follows is matched the same whether or not
    the text before it is there. Encoding the pieces one by one gives the ids of the whole.
    """
    cuts: list[int] = []
    search_from = every
    while search_from < len(text):
        found = _CUT.search(text, search_from)
        if found is None:
            break
        cuts.append(found.start())
        search_from = found.start() + max(every, 1)
    return cuts


def _splits_cleanly(backend: _HFTokenizer) -> bool:
    # Only GPT-2's own pipeline is known to cut cleanly: byte-level, no prefix space, the
    # regex on, no normaliser. Anything else (a foreign tokenizer.json) is encoded whole.
    pre = backend.pre_tokenizer
    return (isinstance(pre, pre_tokenizers.ByteLevel) and not pre.add_prefix_space
            and pre.use_regex and backend.normalizer is None)


def _without_lone_surrogates(text: str) -> str:
    # Pasted text can hold lone surrogates, which have no UTF-8 form: they become U+FFFD.
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def _from_vocab_merges(vocab: Path, merges: Path) -> _HFTokenizer:
    # The same pipeline transformers' GPT2TokenizerFast builds from these two files.
    backend = _HFTokenizer(models.BPE.from_file(str(vocab), str(merges)))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    return backend


def _ids_containing(
    texts: list[str], cache: dict[frozenset[str], frozenset[int]], substrings: Iterable[str]
) -> frozenset[int]:
    # An empty string is in every token: as a DRY sequence breaker it would switch DRY off.
    key = frozenset(s for s in substrings if s)
    if key not in cache:
        cache[key] = frozenset(i for i, text in enumerate(texts) if any(s in text for s in key))
    return cache[key]


class ByteTokenizer(_TokenTable):
    """Ids 0..255 are bytes, 256 is "<|endoftext|>": the tokenizer of the fake engine."""

    def __init__(self) -> None:
        self.eos_id: int = 256
        self.vocab_size: int = 257
        self._bytes = [bytes([b]) for b in range(256)] + [EOS_TOKEN.encode("utf-8")]
        self._finish_table()

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for i, part in enumerate(text.split(EOS_TOKEN)):
            if i:
                ids.append(self.eos_id)
            ids.extend(_without_lone_surrogates(part).encode("utf-8"))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")



class IncrementalDecoder:
    """Feeds token ids one at a time and returns only complete UTF-8 text: never half a character.

    The pushes and the final flush together equal `tokenizer.decode(ids)`, replacement
    characters included: Python's "replace" handler and the Rust `from_utf8_lossy` behind
    `tokenizers` both put one U+FFFD per maximal invalid subsequence.
    """

    def __init__(self, tokenizer: Tokenizer | ByteTokenizer) -> None:
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """The text completed by this token, possibly ""."""
        return self._utf8.decode(self._tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """Whatever bytes remain, with U+FFFD for an unfinished character; then starts afresh."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text
