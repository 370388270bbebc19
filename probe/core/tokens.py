"""Vocabulary tokens as people read them: display text, special and unused tokens, corpus frequency.

Tokenizers mark subwords differently (WordPiece ``##ing``, byte-level BPE ``Ġthe``, SentencePiece ``▁the``).
probe shows a word-initial piece as ``␣the`` and a WordPiece continuation as ``##ing``, so the marker is
visible whatever the tokenizer, and it ranks tokens by real English frequency (wordfreq) on the surface
form with markers stripped.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPACE_MARK = "␣"
"""Shown before a token that starts a new word (GPT-2's ``Ġ``, SentencePiece's ``▁``)."""

_UNUSED = re.compile(
    r"^(\[unused\d+\]|<unused\d+>|<extra_id_\d+>|<\|reserved_special_token_\d+\|>|<reserved_?\d*>|\[reserved\d*\])$",
    re.IGNORECASE,
)
_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
# GPT-2's byte-to-unicode table maps the space byte to "Ġ" and newline to "Ċ".
_BYTE_LEVEL_SPACE = "Ġ"
_SENTENCEPIECE_SPACE = "▁"


@dataclass(frozen=True)
class Vocabulary:
    """The tokenizer's view of each embedding row, computed once per model.

    Attributes:
        pieces: raw token strings, one per row (``len(tokenizer)`` of them).
        display: readable text for each token (markers made explicit, control characters escaped).
        special: bool [V], special tokens of the tokenizer.
        unused: bool [V], placeholder tokens (``[unused3]``, ``<extra_id_0>``, reserved tokens).
        nonprintable: bool [V], byte-fallback pieces and tokens with no visible character.
    """

    pieces: list[str]
    display: list[str]
    special: np.ndarray
    unused: np.ndarray
    nonprintable: np.ndarray

    def __len__(self) -> int:
        return len(self.pieces)

    def surface(self, token_id: int) -> str:
        """The token as a plain lower-case word, subword markers stripped (for frequency look-ups)."""
        return surface_form(self.pieces[token_id])


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif unicodedata.category(ch).startswith("C"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def display_token(piece: str, text: str) -> str:
    """Readable form of one token.

    Args:
        piece: the raw vocabulary string (``Ġthe``, ``##ing``, ``▁the``).
        text: what the tokenizer decodes the piece to on its own.

    Returns:
        ``##ing`` for WordPiece continuations, ``␣the`` for word-initial pieces, else the escaped text.
    """
    if piece.startswith("##") and len(piece) > 2:
        return piece
    if piece in (_BYTE_LEVEL_SPACE, _SENTENCEPIECE_SPACE):
        return SPACE_MARK
    if "\ufffd" in text:  # a lone byte of a multi-byte character: show the bytes
        raw = _byte_level_bytes(piece)
        if raw is not None:
            return "".join(f"\\x{b:02x}" for b in raw)
    if piece.startswith((_BYTE_LEVEL_SPACE, _SENTENCEPIECE_SPACE)) and len(piece) > 1:
        rest = text.lstrip(" ") if text.startswith(" ") else piece[1:]
        return SPACE_MARK + _escape(rest)
    if _BYTE_FALLBACK.match(piece):
        return piece
    if text == "" and piece:
        return _escape(piece)
    if text.startswith(" ") and len(text) > 1:
        return SPACE_MARK + _escape(text[1:])
    if text == " ":
        return SPACE_MARK
    return _escape(text)


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    # GPT-2's byte-level alphabet: printable Latin-1 bytes map to themselves, the other bytes to 256 + n.
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return {ch: b for b, ch in table.items()}


def _byte_level_bytes(piece: str) -> bytes | None:
    """The raw bytes of a GPT-2 style byte-level piece, or None if it is not one."""
    decoder = _byte_decoder()
    if piece and all(ch in decoder for ch in piece):
        return bytes(decoder[ch] for ch in piece)
    return None


def surface_form(piece: str) -> str:
    """Strip subword markers and lower-case: ``##ing`` -> ``ing``, ``ĠThe`` -> ``the``."""
    if piece.startswith("##"):
        piece = piece[2:]
    return piece.lstrip(_BYTE_LEVEL_SPACE + _SENTENCEPIECE_SPACE + " ").lower()


def _is_nonprintable(piece: str, text: str) -> bool:
    if _BYTE_FALLBACK.match(piece) or "\ufffd" in text:
        return True
    visible = [ch for ch in text if not ch.isspace() and not unicodedata.category(ch).startswith("C")]
    return not visible


def build_vocabulary(tokenizer: PreTrainedTokenizerBase) -> Vocabulary:
    """Describe every token of ``tokenizer`` (``len(tokenizer)`` rows, added tokens included).

    Args:
        tokenizer: any Hugging Face tokenizer.

    Returns:
        The :class:`Vocabulary` with display text and special / unused / non-printable masks.
    """
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    pieces = [p if isinstance(p, str) else "" for p in pieces]
    texts = [_decode_one(tokenizer, p) for p in pieces]
    special = np.zeros(size, dtype=bool)
    for i in tokenizer.all_special_ids:
        if 0 <= i < size:
            special[i] = True
    for i, tok in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if 0 <= i < size and getattr(tok, "special", False):
            special[i] = True
    unused = np.array([bool(_UNUSED.match(p)) for p in pieces], dtype=bool)
    nonprintable = np.array([_is_nonprintable(p, t) for p, t in zip(pieces, texts, strict=True)])
    display = [display_token(p, t) for p, t in zip(pieces, texts, strict=True)]
    return Vocabulary(pieces=pieces, display=display, special=special, unused=unused, nonprintable=nonprintable)


def _decode_one(tokenizer: PreTrainedTokenizerBase, piece: str) -> str:
    if piece.startswith("##"):
        return piece
    try:
        return tokenizer.convert_tokens_to_string([piece])
    except Exception:  # some slow tokenizers reject lone pieces; the raw piece is still readable
        return piece


@functools.lru_cache(maxsize=200_000)
def _word_frequency(word: str) -> float:
    from wordfreq import word_frequency

    return word_frequency(word, "en") if word else 0.0


def frequency_ranks(vocabulary: Vocabulary, allowed: np.ndarray | None = None) -> np.ndarray:
    """Token ids ordered from most to least frequent English word (wordfreq), ties broken by id.

    Args:
        vocabulary: from :func:`build_vocabulary`.
        allowed: optional bool [V]; tokens outside it are left out.

    Returns:
        int64 [n] token ids, most frequent first. Tokens with frequency 0 are left out.
    """
    freq = np.array([_word_frequency(vocabulary.surface(i)) for i in range(len(vocabulary))])
    keep = freq > 0
    if allowed is not None:
        keep &= allowed
    ids = np.flatnonzero(keep)
    order = np.lexsort((ids, -freq[ids]))
    return ids[order].astype(np.int64)


def whole_words(vocabulary: Vocabulary) -> np.ndarray:
    """bool [V]: which tokens read as a whole English word, for the readability of a hard prompt.

    A whole word is alphabetic, known to wordfreq (frequency above 0), and not a piece of a longer word: never a
    WordPiece continuation (``##ing``), and in a vocabulary that marks word starts (byte-level BPE's ``Ġ``,
    SentencePiece's ``▁``) only a word-initial piece (``Ġriver``, not ``riv``). Special and unused tokens are
    never words.
    """
    marks = (_BYTE_LEVEL_SPACE, _SENTENCEPIECE_SPACE)
    marked = any(p.startswith(marks) for p in vocabulary.pieces)
    out = np.zeros(len(vocabulary), dtype=bool)
    for i, piece in enumerate(vocabulary.pieces):
        if vocabulary.special[i] or vocabulary.unused[i] or piece.startswith("##"):
            continue
        if marked and not piece.startswith(marks):
            continue
        word = surface_form(piece)
        out[i] = word.isalpha() and _word_frequency(word) > 0
    return out


def label_token_ids(tokenizer: PreTrainedTokenizerBase, label: str) -> list[int]:
    """Token ids of a label as it appears in text (with and without a leading space).

    Raises:
        ValueError: the label is empty or tokenises to nothing.
    """
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"label {label!r} is empty; labels must be non-empty text")
    ids: list[int] = []
    for variant in (label, " " + label):
        found = tokenizer(variant, add_special_tokens=False)["input_ids"]
        for t, piece in zip(found, tokenizer.convert_ids_to_tokens(found), strict=True):
            # a bare word-start marker ("▁", "Ġ") is not a piece of the label
            if t not in ids and t not in tokenizer.all_special_ids and surface_form(piece or "").strip():
                ids.append(int(t))
    if not ids:
        raise ValueError(f"label {label!r} tokenises to nothing with this tokenizer; use a word it knows")
    return ids


def label_word_ids(tokenizer: PreTrainedTokenizerBase, label: str) -> list[int]:
    """A label's sub-tokens as written on its own (the first spelling :func:`label_token_ids` tries).

    This is the label the class-label init averages over, and the label an encoder's verbaliser reads out.
    """
    plain = label_token_ids(tokenizer, label)
    first = [i for i in tokenizer(label, add_special_tokens=False)["input_ids"] if i in plain]
    return first or plain


def text_list(value: object, name: str) -> list[str]:
    """``value`` as a list of text, refusing a lone string (which would be read as its characters).

    Raises:
        TypeError: ``value`` is a string, is not a list, tuple or other sequence, or holds something other than text.
    """
    if value is None:
        return []
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} is {value!r}, a single string; expected a list of text, e.g. {name}=[{value!r}]")
    if hasattr(value, "tolist"):  # a numpy array or a pandas Series of text
        value = value.tolist()
    if not isinstance(value, list | tuple):
        raise TypeError(f"{name} is a {type(value).__name__}; expected a list of text")
    items = list(value)
    wrong = next((item for item in items if not isinstance(item, str)), None)
    if wrong is not None:
        raise TypeError(f"{name} holds {wrong!r} ({type(wrong).__name__}); expected a list of text")
    return items


def check_distinct_labels(tokenizer: PreTrainedTokenizerBase, labels: list[str]) -> None:
    """Refuse labels that the tokenizer cannot tell apart (``Joy`` and ``joy`` under an uncased tokenizer, two
    emoji that both become ``[UNK]``): every task would give them the same score.

    Raises:
        ValueError: naming the labels that collapse and the tokens they share.
    """
    seen: dict[tuple[int, ...], str] = {}
    for label in labels:
        ids = tuple(tokenizer(label, add_special_tokens=False)["input_ids"])
        if ids in seen:
            shown = " ".join(tokenizer.convert_ids_to_tokens(list(ids))) or "nothing"
            raise ValueError(
                f"labels {seen[ids]!r} and {label!r} tokenise to the same tokens ({shown}); this tokenizer cannot "
                "tell them apart, so no prompt could: rename one of them"
            )
        seen[ids] = label
