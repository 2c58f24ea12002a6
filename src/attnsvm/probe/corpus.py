"""The probe's text corpus: read it and cut it into model input sequences.

The default corpus (``data/corpus_en.txt``, a few KB of plain English written for this
package) ships with attnsvm.  The text is tokenized as one stream and cut into consecutive
pieces of equal length, each wrapped with the tokenizer's own special tokens ([CLS] ... [SEP]
for BERT; nothing, or a BOS token, for decoders), until the requested number of query
positions is reached.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import InvalidInputError

__all__ = ["DEFAULT_CORPUS", "MAX_TEXT_BYTES", "Sequence", "default_corpus_text", "read_corpus",
           "make_sequences"]

DEFAULT_CORPUS = "corpus_en.txt"


@dataclass(frozen=True)
class Sequence:
    """One model input.

    Attributes
    ----------
    ids : numpy.ndarray of int64, shape (T,)
        Token ids including the tokenizer's special tokens.
    special : numpy.ndarray of bool, shape (T,)
        True where the token is a special token ([CLS], [SEP], BOS, ...).
    tokens : tuple of str, length T
        The token strings, for reports.
    """

    ids: np.ndarray
    special: np.ndarray
    tokens: tuple[str, ...]

    @property
    def length(self) -> int:
        """Number of tokens T."""
        return int(self.ids.shape[0])


def default_corpus_text() -> str:
    """Return the text of the corpus that ships with the package."""
    data = resources.files("attnsvm.probe").joinpath("data")
    return data.joinpath(DEFAULT_CORPUS).read_text("utf-8")


#: At most this many bytes of a user's text file are read (the default probe needs ~10 KB).
MAX_TEXT_BYTES = 8 * 1024 * 1024


def read_corpus(path: str | os.PathLike[str] | None, max_bytes: int | None = None) -> str:
    """Read (the start of) a UTF-8 text file, or the default corpus when ``path`` is None.

    Parameters
    ----------
    path : path-like or None
    max_bytes : int, optional
        Read bound, default :data:`MAX_TEXT_BYTES`; a longer file is cut at the last whitespace
        before the bound (endless inputs such as ``/dev/zero`` or a pipe stop there too).

    Raises
    ------
    InvalidInputError
        The file is missing, unreadable, not UTF-8, binary (NUL bytes) or holds no text.
    """
    if path is None:
        return default_corpus_text()
    limit = MAX_TEXT_BYTES if max_bytes is None else int(max_bytes)
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(limit + 1)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"The text file '{p}' does not exist.") from exc
    except OSError as exc:
        raise InvalidInputError(f"The text file '{p}' is not readable: {exc}") from exc
    if b"\x00" in raw:
        raise InvalidInputError(
            f"The text file '{p}' holds NUL bytes: expected UTF-8 text, got binary data."
        )
    if len(raw) > limit:
        # Cut at the last whitespace (an ASCII byte, never inside a UTF-8 character), or, in a
        # text without any, just before an incomplete trailing character.
        raw = raw[:limit]
        cut = max(raw.rfind(b" "), raw.rfind(b"\n"))
        raw = raw[:cut] if cut > 0 else raw[: limit - _incomplete_tail(raw)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The text file '{p}' is not UTF-8 text: {exc}") from exc
    if not text.strip():
        raise InvalidInputError(f"The text file '{p}' holds no text.")
    return text


def _incomplete_tail(raw: bytes) -> int:
    """Number of trailing bytes of ``raw`` that start a UTF-8 character left incomplete."""
    for k in range(1, min(4, len(raw)) + 1):
        b = raw[-k]
        if b & 0xC0 != 0x80:  # the lead byte of the last character
            need = 1 if b < 0x80 else 2 if b >> 5 == 6 else 3 if b >> 4 == 14 else 4
            return k if need > k else 0
    return 0


def _special_wrap(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text, e.g. ([CLS], [SEP])."""
    with_sp = list(tokenizer("a")["input_ids"])
    body = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    for i in range(len(with_sp) - len(body) + 1):
        if with_sp[i : i + len(body)] == body:
            return with_sp[:i], with_sp[i + len(body) :]
    return [], []


def _token_stream(tokenizer: Any, text: str, need: int, words_per_chunk: int = 2000) -> list[int]:
    """Token ids of ``text`` (whitespace runs as single spaces), tokenized in chunks of words
    until at least ``need`` ids are there: a long text costs only what the probe uses.

    Chunks are cut at spaces, so only a word-piece merge across a cut could differ from
    tokenizing the whole text at once (word-level pre-tokenizers never merge across spaces).
    """
    words = text.split()
    ids: list[int] = []
    for start in range(0, len(words), words_per_chunk):
        chunk = " ".join(words[start : start + words_per_chunk])
        if start:  # the space before a chunk's first word belongs to it (byte-level BPE)
            chunk = " " + chunk
        ids.extend(tokenizer(chunk, add_special_tokens=False, verbose=False)["input_ids"])
        if len(ids) >= need:
            break
    return ids


def make_sequences(
    tokenizer: Any, text: str, *, seq_len: int = 32, max_queries: int = 352
) -> list[Sequence]:
    """Cut ``text`` into model inputs of ``seq_len`` tokens (the last may be shorter).

    Parameters
    ----------
    tokenizer : transformers tokenizer
        The model's tokenizer.
    text : str
        Plain text; whitespace runs (line breaks included) become single spaces.
    seq_len : int
        Tokens per sequence, special tokens included.
    max_queries : int
        Stop once the sequences hold at least this many positions in total (every position is a
        query); whole sequences are kept, so the total may exceed it by less than ``seq_len``.

    Returns
    -------
    list of Sequence
        At least one sequence; all have length ``seq_len`` except possibly the last.
    """
    prefix, suffix = _special_wrap(tokenizer)
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    body = seq_len - len(prefix) - len(suffix)
    if body < 2:
        raise InvalidInputError(f"The sequence length {seq_len} leaves no room for text tokens.")
    stream = _token_stream(tokenizer, text, max_queries + seq_len)
    if len(stream) < 2:
        raise InvalidInputError("The text has fewer than two tokens.")
    out: list[Sequence] = []
    total = 0
    for start in range(0, len(stream), body):
        piece = stream[start : start + body]
        if len(piece) < 2:
            break
        ids = prefix + list(piece) + suffix
        special = np.zeros(len(ids), dtype=bool)
        special[: len(prefix)] = True
        special[len(ids) - len(suffix) :] = True
        special |= np.isin(np.asarray(ids), np.asarray(sorted(special_ids), dtype=np.int64))
        toks = tuple(tokenizer.convert_ids_to_tokens(ids))
        out.append(Sequence(np.asarray(ids, dtype=np.int64), special, toks))
        total += len(ids)
        if total >= max_queries:
            break
    return out
