"""The text front end shared by training and inference: text -> int32 codepoint tensors.

TFLite builtin ops cannot read strings, so tokenization, normalisation and WordPiece splitting run
on the host and the model receives Unicode codepoints (../shared/STACK.md). The layout, shared
with the in-graph hashing layers (`prado_tiny/layers/minhash_projection.py`,
`ternary_projection.py`):

* token form: int32 `[max_tokens, max_chars]` per example (`[batch, max_tokens, max_chars]`
  batched); row `i` holds the codepoints of token `i`, zero-padded on the right.
* subword form: int32 `[max_tokens, max_pieces, max_chars]` (`[batch, ...]` batched); a
  WordPiece continuation piece keeps its literal `##` prefix as codepoints 35, 35, which count
  towards `max_chars`.
* 0 is padding: a padding token (or piece) is all zeros and every real token has a non-zero
  first codepoint, so `codepoints[..., 0] != 0` is the token mask.

What a token becomes, in this order (applied per token, so the offsets that `encode_text`
returns still index the raw utterance):

1. Code points that cannot stand in valid text are replaced by U+FFFD: every surrogate
   (U+D800..U+DFFF; a Python `str` can hold them, e.g. after `surrogateescape` decoding; a
   surrogate *pair* is replaced too, as two U+FFFD, and not reassembled) and U+0000 (it would
   read as padding).
2. Unicode normalisation (`NFKC` by default: full-width and compatibility forms fold into
   their plain letters), then lower-casing (`str.lower`). Both may change the length.
3. An empty token (possible only in caller-given token lists) becomes a single U+FFFD, so that
   it keeps its position (slot tags stay aligned) and is not mistaken for padding.
4. Truncation: tokens beyond `max_tokens`, characters beyond `max_chars` (the start of the
   token is kept) and pieces beyond `max_pieces` are dropped, and every drop is counted in
   `TextEncoder.stats` (`stats.summary()` for a readable report); the first drop of each kind
   also logs a warning. Nothing is dropped silently.

Every distinct token's encoded row is cached (bounded, `cache_size`), so encoding a corpus costs a
dictionary lookup per token after the first epoch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import unicodedata
from typing import List, Optional, Sequence, Tuple

import numpy as np

from prado_tiny.data import tokenizer as _tokenizer

logger = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"
CONFIG_FILE = "text_encoder.json"
VOCAB_FILE = "wordpiece_vocab.txt"
FORMAT_VERSION = 1
NORMALIZATIONS = (None, "NFC", "NFKC", "NFD", "NFKD")
TOKENIZERS = {"default": _tokenizer.tokenize, "whitespace": _tokenizer.whitespace_tokenize}
# Tokens longer than this are encoded but not cached: they are rare (garbage, pasted URLs) and
# caching them would pin arbitrarily large keys in memory.
_MAX_CACHED_TOKEN_LEN = 256
_UNREPRESENTABLE = re.compile("[\x00\ud800-\udfff]")
_INT32 = np.dtype("<i4")


@dataclasses.dataclass
class EncoderStats:
    """Counts of what a `TextEncoder` has encoded and what it had to drop.

    Attributes:
      examples: token sequences encoded (an `encode_text` call counts once).
      tokens: tokens in those sequences, including dropped ones.
      tokens_dropped: tokens beyond `max_tokens` (not encoded at all).
      examples_truncated: sequences that lost tokens.
      tokens_chars_cut: encoded tokens longer than `max_chars` (token form).
      chars_dropped: characters cut off those tokens.
      pieces: WordPiece pieces of the encoded tokens (subword form), including dropped ones.
      pieces_dropped: pieces beyond `max_pieces`.
      tokens_pieces_cut: tokens that lost pieces.
      pieces_chars_cut: kept pieces longer than `max_chars` (`##` included).
      piece_chars_dropped: characters cut off those pieces.
      chars_replaced: surrogates and U+0000 replaced by U+FFFD.
      empty_tokens: empty tokens encoded as U+FFFD.
    """

    examples: int = 0
    tokens: int = 0
    tokens_dropped: int = 0
    examples_truncated: int = 0
    tokens_chars_cut: int = 0
    chars_dropped: int = 0
    pieces: int = 0
    pieces_dropped: int = 0
    tokens_pieces_cut: int = 0
    pieces_chars_cut: int = 0
    piece_chars_dropped: int = 0
    chars_replaced: int = 0
    empty_tokens: int = 0

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def truncated(self) -> bool:
        """True when anything at all was dropped."""
        return bool(self.tokens_dropped or self.chars_dropped or self.pieces_dropped
                    or self.piece_chars_dropped)

    def summary(self, encoder: Optional["TextEncoder"] = None) -> str:
        """A readable multi-line report; pass the encoder to name its limits."""
        lim = (lambda name: f"={getattr(encoder, name)}") if encoder else (lambda name: "")
        lines = [f"encoded {self.examples} examples, {self.tokens} tokens"]
        lines.append(
            f"tokens beyond max_tokens{lim('max_tokens')}: {self.tokens_dropped} dropped "
            f"({_pct(self.tokens_dropped, self.tokens)}) in {self.examples_truncated} examples "
            f"({_pct(self.examples_truncated, self.examples)})")
        kept = self.tokens - self.tokens_dropped
        lines.append(
            f"tokens longer than max_chars{lim('max_chars')}: {self.tokens_chars_cut} "
            f"({_pct(self.tokens_chars_cut, kept)}), {self.chars_dropped} chars dropped")
        if self.pieces:
            lines.append(
                f"pieces beyond max_pieces{lim('max_pieces')}: {self.pieces_dropped} dropped "
                f"({_pct(self.pieces_dropped, self.pieces)}) from {self.tokens_pieces_cut} tokens")
            lines.append(
                f"pieces longer than max_chars{lim('max_chars')}: {self.pieces_chars_cut}, "
                f"{self.piece_chars_dropped} chars dropped")
        if self.chars_replaced or self.empty_tokens:
            lines.append(f"replaced by U+FFFD: {self.chars_replaced} surrogate/NUL chars, "
                         f"{self.empty_tokens} empty tokens")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.2f}%" if whole else "0%"


@dataclasses.dataclass
class EncodedText:
    """What `TextEncoder.encode_text` returns (or `encode_texts`, with a leading batch axis).

    Attributes:
      codepoints: int32 `[max_tokens, max_chars]` (`[batch, ...]` from `encode_texts`).
      subwords: int32 `[max_tokens, max_pieces, max_chars]`, or None without a vocabulary.
      tokens: the raw tokens of the text, all of them (also those beyond `max_tokens`).
      offsets: `(start, end)` character offsets of each token into the raw text, end exclusive.
      num_encoded: how many of `tokens` are encoded (`min(len(tokens), max_tokens)`).
    """

    codepoints: np.ndarray
    subwords: Optional[np.ndarray]
    tokens: list
    offsets: list
    num_encoded: object


class TextEncoder:
    """Turns text or tokens into the int32 codepoint tensors the projection layers read.

    See the module docstring for the tensor layout and what happens to each token.

    Args:
      max_tokens: tokens per example; longer examples are cut (counted in `stats`).
      max_chars: codepoints per token (or per piece, `##` included); longer ones are cut.
        24 keeps every token of MTOP's six training sets whole.
      lowercase: lower-case each token (after normalisation).
      normalization: `"NFKC"`, `"NFC"`, `"NFKD"`, `"NFD"` or None.
      wordpiece: None, or a `WordpieceSplitter`, a list of pieces, a vocabulary file path, or a
        splitter config dict: enables the subword form.
      max_pieces: pieces per token in the subword form. With a 4000-piece vocabulary learned on
        MTOP's six training sets, 6 pieces keep 99.8% of the development tokens whole.
      tokenizer: `"default"` (`prado_tiny.data.tokenizer.tokenize`, reproduces MTOP's tokens) or
        `"whitespace"` (for datasets that give space-separated tokens).
      cache_size: maximum number of cached distinct tokens per form (not part of the config:
        it does not change any output).

    Example:
    >>> enc = TextEncoder(max_tokens=8, max_chars=6)
    >>> out = enc.encode_text("Set an alarm for 7pm")
    >>> out.tokens
    ['Set', 'an', 'alarm', 'for', '7', 'pm']
    >>> out.codepoints.shape, out.codepoints.dtype
    ((8, 6), dtype('int32'))
    >>> enc.encode_tokens_batch([["hi"], ["good", "night"]]).shape
    (2, 8, 6)
    >>> print(enc.stats.summary(enc))
    """

    def __init__(self, max_tokens: int = 64, max_chars: int = 24, lowercase: bool = True,
                 normalization: Optional[str] = "NFKC", wordpiece=None, max_pieces: int = 6,
                 tokenizer: str = "default", cache_size: int = 200_000):
        for name, value in (("max_tokens", max_tokens), ("max_chars", max_chars),
                            ("max_pieces", max_pieces), ("cache_size", cache_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {sorted(TOKENIZERS)}, got {tokenizer!r}")
        self.max_tokens = int(max_tokens)
        self.max_chars = int(max_chars)
        self.max_pieces = int(max_pieces)
        self.lowercase = bool(lowercase)
        self.normalization = normalization
        self.tokenizer = tokenizer
        self.cache_size = int(cache_size)
        self.wordpiece = _as_splitter(wordpiece)
        self._tokenize = TOKENIZERS[tokenizer]
        self._row_bytes = 4 * self.max_chars
        self._block_bytes = 4 * self.max_chars * self.max_pieces
        self._token_cache: dict = {}
        self._subword_cache: dict = {}
        self._warned: set = set()
        self.stats = EncoderStats()

    # ----------------------------------------------------------------- per token

    def normalize_token(self, token: str) -> str:
        """The string a token is encoded (and WordPiece-split) as: steps 1-3 of the module doc."""
        return self._normalize(token)[0]

    def _normalize(self, token: str) -> Tuple[str, int, int]:
        if not isinstance(token, str):
            raise TypeError(f"a token must be a str, got {type(token).__name__}: {token!r}")
        replaced = 0
        if _UNREPRESENTABLE.search(token):
            token, replaced = _UNREPRESENTABLE.subn(REPLACEMENT, token)
        if self.normalization:
            token = unicodedata.normalize(self.normalization, token)
        if self.lowercase:
            token = token.lower()
        if not token:
            return REPLACEMENT, replaced, 1
        return token, replaced, 0

    def _token_entry(self, token: str) -> tuple:
        """(row bytes, events or None) for one token, cached."""
        text, replaced, empty = self._normalize(token)
        cut = len(text) - self.max_chars
        if cut > 0:
            text = text[:self.max_chars]
        # UTF-32-LE bytes are the little-endian int32 codepoints themselves.
        row = text.encode("utf-32-le")
        row += bytes(self._row_bytes - len(row))
        events = (max(cut, 0), replaced, empty) if (cut > 0 or replaced or empty) else None
        entry = (row, events)
        self._remember(self._token_cache, token, entry)
        return entry

    def _subword_entry(self, token: str) -> tuple:
        """(block bytes, number of pieces, events or None) for one token, cached."""
        text, replaced, empty = self._normalize(token)
        pieces = self.wordpiece.split_cached(text)
        kept = pieces[:self.max_pieces]
        parts = []
        cut_pieces = cut_chars = 0
        for piece in kept:
            if len(piece) > self.max_chars:
                cut_pieces += 1
                cut_chars += len(piece) - self.max_chars
                piece = piece[:self.max_chars]
            row = piece.encode("utf-32-le")
            parts.append(row + bytes(self._row_bytes - len(row)))
        parts.append(bytes(self._row_bytes * (self.max_pieces - len(kept))))
        dropped = len(pieces) - len(kept)
        events = ((dropped, cut_pieces, cut_chars, replaced, empty)
                  if (dropped or cut_pieces or replaced or empty) else None)
        entry = (b"".join(parts), len(pieces), events)
        self._remember(self._subword_cache, token, entry)
        return entry

    def _remember(self, cache: dict, token: str, entry: tuple) -> None:
        if len(token) > _MAX_CACHED_TOKEN_LEN:
            return
        if len(cache) >= self.cache_size:
            cache.clear()  # cheap and bounded; a training corpus refills it in one pass
        cache[token] = entry

    # ----------------------------------------------------------------- sequences

    def encode_tokens(self, tokens: Sequence[str]) -> np.ndarray:
        """Token form of one token list: int32 `[max_tokens, max_chars]`."""
        return self.encode_tokens_batch([tokens])[0]

    def encode_tokens_batch(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Token form of several token lists: int32 `[batch, max_tokens, max_chars]`."""
        token_lists = _as_list(token_lists)
        buf = self._join_tokens(token_lists, count_sequences=True)
        return np.frombuffer(buf, dtype=_INT32).reshape(
            len(token_lists), self.max_tokens, self.max_chars)

    def encode_subwords(self, tokens: Sequence[str]) -> np.ndarray:
        """Subword form of one token list: int32 `[max_tokens, max_pieces, max_chars]`."""
        return self.encode_subwords_batch([tokens])[0]

    def encode_subwords_batch(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Subword form: int32 `[batch, max_tokens, max_pieces, max_chars]`."""
        token_lists = _as_list(token_lists)
        buf = self._join_subwords(token_lists, count_sequences=True)
        return np.frombuffer(buf, dtype=_INT32).reshape(
            len(token_lists), self.max_tokens, self.max_pieces, self.max_chars)

    #: The model input forms: `subwords` (codepoints of WordPiece pieces, pNLP-Mixer),
    #: `codepoints` (whole tokens, pQRNN), `piece_ids` (vocabulary ids, embedding models).
    INPUT_FORMS = ("subwords", "codepoints", "piece_ids")

    def encode_form(self, form: str, tokens: Sequence[str]) -> np.ndarray:
        """One token list in the model input form `form` (one of `INPUT_FORMS`)."""
        if form == "subwords":
            return self.encode_subwords(list(tokens))
        if form == "codepoints":
            return self.encode_tokens(list(tokens))
        if form == "piece_ids":
            return self.encode_piece_ids(list(tokens))
        raise ValueError(f"input form must be one of {self.INPUT_FORMS}, got {form!r}")

    def input_shape(self, form: str) -> tuple:
        """The shape of one example in the input form `form` (without the batch axis)."""
        return {"subwords": (self.max_tokens, self.max_pieces, self.max_chars),
                "codepoints": (self.max_tokens, self.max_chars),
                "piece_ids": (self.max_tokens, self.max_pieces)}[form]

    def encode_piece_ids(self, tokens: Sequence[str]) -> np.ndarray:
        """Piece-id form of one token list: int32 `[max_tokens, max_pieces]`."""
        return self.encode_piece_ids_batch([tokens])[0]

    def encode_piece_ids_batch(self, token_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """Piece-id form, for models with an embedding table: int32 `[batch, max_tokens,
        max_pieces]`, the WordPiece vocabulary index of each piece plus 2; 0 is padding and 1 a
        piece outside the vocabulary (a token WordPiece keeps whole). Needs a vocabulary."""
        if self.wordpiece is None:
            raise ValueError("encode_piece_ids needs a TextEncoder with a WordPiece vocabulary")
        if not hasattr(self, "_piece_index"):
            self._piece_index = {p: i + 2 for i, p in enumerate(self.wordpiece.vocabulary)}
        index = self._piece_index
        token_lists = self._cut_to_max_tokens(_as_list(token_lists), count_sequences=False)
        out = np.zeros((len(token_lists), self.max_tokens, self.max_pieces), np.int32)
        for b, tokens in enumerate(token_lists):
            for t, token in enumerate(tokens):
                pieces = self.wordpiece.split_cached(self._normalize(token)[0])[:self.max_pieces]
                out[b, t, :len(pieces)] = [index.get(p, 1) for p in pieces]
        return out

    def tokenize(self, text: str) -> List[Tuple[str, int, int]]:
        """The configured tokenizer: `[(token, start, end)]` into the raw text."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self._tokenize(text)

    def encode_text(self, text: str) -> EncodedText:
        """Tokenizes raw text and encodes it (both forms when a vocabulary is set)."""
        out = self.encode_texts([text])
        return EncodedText(out.codepoints[0], None if out.subwords is None else out.subwords[0],
                           out.tokens[0], out.offsets[0], out.num_encoded[0])

    def encode_texts(self, texts: Sequence[str]) -> EncodedText:
        """Batched `encode_text`: arrays with a leading batch axis, lists of token lists."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a list of texts (use encode_text for one)")
        triples = [self.tokenize(t) for t in texts]
        tokens = [[t for t, _, _ in tr] for tr in triples]
        offsets = [[(s, e) for _, s, e in tr] for tr in triples]
        codepoints = self.encode_tokens_batch(tokens)
        subwords = None
        if self.wordpiece is not None:
            # The sequences were counted once already by the token form.
            buf = self._join_subwords(tokens, count_sequences=False)
            subwords = np.frombuffer(buf, dtype=_INT32).reshape(
                len(tokens), self.max_tokens, self.max_pieces, self.max_chars)
        num = [min(len(t), self.max_tokens) for t in tokens]
        return EncodedText(codepoints, subwords, tokens, offsets, num)

    def _count_sequences(self, token_lists) -> list:
        """Counts sequences and token drops; returns the token lists cut to max_tokens."""
        st = self.stats
        limit = self.max_tokens
        cut_lists = []
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("expected a list of tokens, got a str (use encode_text for text)")
            n = len(tokens)
            st.examples += 1
            st.tokens += n
            if n > limit:
                st.tokens_dropped += n - limit
                st.examples_truncated += 1
                tokens = tokens[:limit]
            cut_lists.append(tokens)
        return cut_lists

    def _cut_to_max_tokens(self, token_lists, count_sequences: bool) -> list:
        """Token lists cut to max_tokens; the cut is counted only once per sequence (by the
        form that counts sequences), so encoding both forms does not count it twice."""
        if count_sequences:
            return self._count_sequences(token_lists)
        return [t[:self.max_tokens] for t in token_lists]

    def _join_tokens(self, token_lists, count_sequences: bool) -> bytearray:
        token_lists = self._cut_to_max_tokens(token_lists, count_sequences)
        get = self._token_cache.get
        new = self._token_entry
        row_bytes, limit = self._row_bytes, self.max_tokens
        parts = []
        append = parts.append
        events = []
        for tokens in token_lists:
            for token in tokens:
                entry = get(token)
                if entry is None:
                    entry = new(token)
                append(entry[0])
                if entry[1] is not None:
                    events.append(entry[1])
            if len(tokens) < limit:
                append(bytes(row_bytes * (limit - len(tokens))))
        if events:
            st = self.stats
            for cut, replaced, empty in events:
                if cut:
                    st.tokens_chars_cut += 1
                    st.chars_dropped += cut
                st.chars_replaced += replaced
                st.empty_tokens += empty
            self._warn_once()
        if count_sequences and self.stats.tokens_dropped:
            self._warn_once()
        return bytearray().join(parts)

    def _join_subwords(self, token_lists, count_sequences: bool) -> bytearray:
        if self.wordpiece is None:
            raise ValueError("the subword form needs a WordPiece vocabulary (wordpiece=...)")
        token_lists = self._cut_to_max_tokens(token_lists, count_sequences)
        get = self._subword_cache.get
        new = self._subword_entry
        block_bytes, limit = self._block_bytes, self.max_tokens
        parts = []
        append = parts.append
        events = []
        pieces = 0
        for tokens in token_lists:
            for token in tokens:
                entry = get(token)
                if entry is None:
                    entry = new(token)
                append(entry[0])
                pieces += entry[1]
                if entry[2] is not None:
                    events.append(entry[2])
            if len(tokens) < limit:
                append(bytes(block_bytes * (limit - len(tokens))))
        st = self.stats
        st.pieces += pieces
        for dropped, cut_pieces, cut_chars, replaced, empty in events:
            if dropped:
                st.tokens_pieces_cut += 1
                st.pieces_dropped += dropped
            st.pieces_chars_cut += cut_pieces
            st.piece_chars_dropped += cut_chars
            if count_sequences:  # else the token form counted them
                st.chars_replaced += replaced
                st.empty_tokens += empty
        if events or (count_sequences and st.tokens_dropped):
            self._warn_once()
        return bytearray().join(parts)

    def _warn_once(self) -> None:
        st = self.stats
        for kind, count, limit in (("tokens_dropped", st.tokens_dropped, "max_tokens"),
                                   ("chars_dropped", st.chars_dropped, "max_chars"),
                                   ("pieces_dropped", st.pieces_dropped, "max_pieces"),
                                   ("piece_chars_dropped", st.piece_chars_dropped, "max_chars")):
            if count and kind not in self._warned:
                self._warned.add(kind)
                logger.warning("TextEncoder: input longer than %s=%d was truncated (%s so far); "
                               "see encoder.stats.summary()", limit, getattr(self, limit), kind)

    def reset_stats(self) -> EncoderStats:
        """Starts new counts; returns the old ones."""
        old, self.stats = self.stats, EncoderStats()
        return old

    def clear_cache(self) -> None:
        self._token_cache.clear()
        self._subword_cache.clear()

    # ----------------------------------------------------------------- inverse, for humans

    @staticmethod
    def decode_tokens(codepoints: np.ndarray) -> List[str]:
        """The non-padding rows of a token-form array `[tokens, chars]` back as strings."""
        arr = np.asarray(codepoints)
        return ["".join(chr(c) for c in row if c) for row in arr if row[0] != 0]

    @staticmethod
    def decode_subwords(codepoints: np.ndarray) -> List[List[str]]:
        """The pieces of each non-padding token of a subword-form array `[tokens, pieces, chars]`."""
        arr = np.asarray(codepoints)
        return [TextEncoder.decode_tokens(token) for token in arr if token[0, 0] != 0]

    # ----------------------------------------------------------------- config

    def get_config(self) -> dict:
        """JSON-serialisable; everything that changes the output (and nothing else)."""
        return {
            "format_version": FORMAT_VERSION,
            "max_tokens": self.max_tokens,
            "max_chars": self.max_chars,
            "max_pieces": self.max_pieces,
            "lowercase": self.lowercase,
            "normalization": self.normalization,
            "tokenizer": self.tokenizer,
            "wordpiece": None if self.wordpiece is None else self.wordpiece.get_config(),
            "unicode_version": unicodedata.unidata_version,
        }

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> "TextEncoder":
        config = dict(config)
        version = config.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ValueError(f"text encoder config format {version} is not supported "
                             f"(this version reads {FORMAT_VERSION})")
        unicode_version = config.pop("unicode_version", None)
        if unicode_version and unicode_version != unicodedata.unidata_version:
            # Normalisation and lower-casing follow Python's Unicode tables.
            logger.warning("text encoder config was made with Unicode %s, this Python has %s: "
                           "a few rare characters may normalise differently",
                           unicode_version, unicodedata.unidata_version)
        config.update(kwargs)
        return cls(**config)

    def fingerprint(self) -> str:
        """A stable hash of `get_config()`: the key of host feature caches."""
        return config_fingerprint(self.get_config())

    def save(self, directory) -> str:
        """Writes `text_encoder.json` (and `wordpiece_vocab.txt`) into `directory`."""
        os.makedirs(directory, exist_ok=True)
        config = self.get_config()
        if self.wordpiece is not None:
            self.wordpiece.save(os.path.join(directory, VOCAB_FILE))
            config["wordpiece"] = dict(config["wordpiece"], vocabulary=VOCAB_FILE)
        path = os.path.join(directory, CONFIG_FILE)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=1, ensure_ascii=False, sort_keys=True)
            f.write("\n")
        return path

    @classmethod
    def load(cls, directory) -> "TextEncoder":
        with open(os.path.join(directory, CONFIG_FILE), encoding="utf-8") as f:
            config = json.load(f)
        wp = config.get("wordpiece")
        if wp is not None and isinstance(wp.get("vocabulary"), str):
            from prado_tiny.data.wordpiece import load_vocabulary
            config["wordpiece"] = dict(wp, vocabulary=load_vocabulary(
                os.path.join(directory, wp["vocabulary"])))
        return cls.from_config(config)


def _as_list(token_lists) -> list:
    if isinstance(token_lists, str):
        raise TypeError("expected a list of token lists, got a str")
    return token_lists if isinstance(token_lists, (list, tuple)) else list(token_lists)


def config_fingerprint(config) -> str:
    """sha256 hex of the canonical JSON of a config (sorted keys, ASCII)."""
    text = json.dumps(config, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _as_splitter(wordpiece):
    if wordpiece is None:
        return None
    from prado_tiny.data.wordpiece import WordpieceSplitter

    if isinstance(wordpiece, WordpieceSplitter):
        return wordpiece
    if isinstance(wordpiece, dict):
        return WordpieceSplitter.from_config(wordpiece)
    return WordpieceSplitter(wordpiece)
