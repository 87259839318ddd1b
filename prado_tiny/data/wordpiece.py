"""WordPiece vocabularies: learned with tensorflow-text, applied on the host in pure Python.

The model never sees vocabulary ids: a WordPiece split only decides where a token is cut, and the
in-graph hashing projection then hashes the characters of each piece (a continuation piece keeps
its literal `##` prefix). So the vocabulary is a segmentation aid, not an embedding table, and
a token that cannot be split must keep its characters: where tensorflow-text would emit `[UNK]`
(no vocabulary match, or a token longer than `max_bytes_per_word` UTF-8 bytes), this module keeps
the whole token as a single piece. That is exactly what `tensorflow_text.WordpieceTokenizer`
does with `unknown_token=None`, which is the reference the tests compare against.

Learning uses tensorflow-text's vocabulary learner
(`tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib.learn`, the function
`bert_vocab_from_dataset` calls) on counts of *our* tokens: `bert_vocab_from_dataset` would first
split text with BERT's basic tokenizer, whose words differ from the project's tokenizer, and a
vocabulary learned on other word boundaries splits our tokens badly.

Splitting with tensorflow-text costs a graph call per batch and cannot be cached per token, so
`WordpieceSplitter.split` is a pure-Python port of the same greedy longest-match-first rule with
a per-token cache; `WordpieceSplitter.split_with_tf_text` runs the tensorflow-text op itself (tests
and checks only).

The vocabulary file is UTF-8, one piece per line, `\\n` line ends, no header, order kept.
"""
from __future__ import annotations

import collections
import importlib
import importlib.util
import os
import sys
from typing import Dict, Iterable, List, Sequence, Union

SUFFIX_INDICATOR = "##"
# tensorflow-text's default: a longer token is never split (it is kept whole here).
DEFAULT_MAX_BYTES_PER_WORD = 100


def learn_vocabulary(tokens: Iterable, vocab_size: int = 4000,
                     reserved_tokens: Sequence[str] = (), normalize=None,
                     max_token_length: int = 50, max_unique_chars: int = 1000,
                     num_iterations: int = 4, lower_thresh: int = 10,
                     slack_ratio: float = 0.05) -> List[str]:
    """Learns a WordPiece vocabulary from training tokens with tensorflow-text's learner.

    Deterministic: the counts are handed to the learner sorted by (count desc, token), and the
    learner's own output order is (reserved, single characters sorted, pieces by count then
    alphabetically), so the same tokens give the same file in any process.

    Args:
      tokens: an iterable of token strings, or of token lists (one list per example, e.g.
        `Example.tokens`), or a `{token: count}` mapping.
      vocab_size: the maximum vocabulary size (the learner aims at `vocab_size*(1-slack_ratio)`
        to `vocab_size`; a small corpus may give fewer pieces, since a piece needs at least
        `lower_thresh` occurrences).
      reserved_tokens: strings put first in the vocabulary, e.g. `["[PAD]"]`. None are needed:
        the model hashes characters and never looks up ids.
      normalize: a callable applied to every token before counting; pass
        `TextEncoder.normalize_token` so the vocabulary is learned on exactly the strings the
        encoder splits (normalised, lower-cased).
      max_token_length: longer tokens are not counted (the learner's own limit).
      max_unique_chars: the alphabet is limited to the most frequent characters; tokens with
        other characters are not counted (they stay whole when split: never `[UNK]`).
      num_iterations, lower_thresh, slack_ratio: passed to the learner.

    Returns:
      The vocabulary as a list of unique strings.

    Example:
    >>> enc = TextEncoder()
    >>> vocab = learn_vocabulary([ex.tokens for ex in train], vocab_size=4000,
    ...                          normalize=enc.normalize_token)
    >>> save_vocabulary(vocab, "model_dir/wordpiece_vocab.txt")
    """
    counts = _count_tokens(tokens, normalize)
    if not counts:
        raise ValueError("learn_vocabulary: no tokens to learn from")
    learner = _learner_module()
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    vocab = learner.learn(ordered, vocab_size, list(reserved_tokens), lower_thresh=lower_thresh,
                          num_iterations=num_iterations, max_token_length=max_token_length,
                          max_unique_chars=max_unique_chars, slack_ratio=slack_ratio,
                          include_joiner_token=True, joiner=SUFFIX_INDICATOR)
    return list(vocab)


_LEARNER = "tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib"


def _learner_module():
    """tensorflow-text's learner module, loaded without running `tensorflow_text/__init__`.

    The learner is plain Python and NumPy, but importing it through its package imports
    TensorFlow (2-7 s). Its file is located with `find_spec` (which does not execute the
    package) and loaded alone; if that fails for any reason, the ordinary import is used.
    """
    if _LEARNER in sys.modules:
        return sys.modules[_LEARNER]
    try:
        spec = importlib.util.find_spec("tensorflow_text")
        root = os.path.dirname(spec.origin)
        path = os.path.join(root, "tools", "wordpiece_vocab", "wordpiece_tokenizer_learner_lib.py")
        file_spec = importlib.util.spec_from_file_location("_prado_wordpiece_learner", path)
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
        return module
    except Exception:  # pragma: no cover - layout changed: pay for the TensorFlow import
        return importlib.import_module(_LEARNER)


def _count_tokens(tokens, normalize) -> collections.Counter:
    if isinstance(tokens, dict):
        items = tokens.items()
    else:
        items = ((t, 1) for t in _flatten(tokens))
    counts: collections.Counter = collections.Counter()
    for token, count in items:
        if normalize is not None:
            token = normalize(token)
        # A piece with a line break could not be written one per line; tokens from the project's
        # tokenizer never hold one (whitespace separates tokens).
        if not token or "\n" in token or "\r" in token:
            continue
        counts[token] += count
    return counts


def _flatten(tokens):
    for item in tokens:
        if isinstance(item, str):
            yield item
        else:
            yield from item


def save_vocabulary(vocabulary: Sequence[str], path: Union[str, os.PathLike]) -> None:
    """Writes a vocabulary: UTF-8, one piece per line, `\\n` line ends (strict UTF-8)."""
    _check_vocabulary(vocabulary)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for piece in vocabulary:
            f.write(piece + "\n")


def load_vocabulary(path: Union[str, os.PathLike]) -> List[str]:
    """Reads a vocabulary written by `save_vocabulary` (or any BERT-style vocab.txt)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    vocab = [line[:-1] if line.endswith("\r") else line for line in lines]
    _check_vocabulary(vocab, str(path))
    return vocab


def _check_vocabulary(vocabulary: Sequence[str], where: str = "vocabulary") -> None:
    seen = set()
    for i, piece in enumerate(vocabulary):
        if not isinstance(piece, str) or not piece:
            raise ValueError(f"{where}: entry {i} is empty or not a string: {piece!r}")
        if "\n" in piece or "\r" in piece:
            raise ValueError(f"{where}: entry {i} holds a line break: {piece!r}")
        if any(0xD800 <= ord(c) <= 0xDFFF for c in piece):
            raise ValueError(f"{where}: entry {i} holds a surrogate code point: {piece!r}")
        if piece in seen:
            raise ValueError(f"{where}: entry {i} is a duplicate: {piece!r}")
        seen.add(piece)


class WordpieceSplitter:
    """Splits tokens into WordPiece pieces, with tensorflow-text's `WordpieceTokenizer` rule.

    Greedy longest-match-first: the longest prefix of the token that is in the vocabulary is cut
    off, what remains is looked up with the `##` prefix, and so on. A token that cannot be split
    completely, or that is longer than `max_bytes_per_word` UTF-8 bytes, is returned whole as a
    single piece (`WordpieceTokenizer(unknown_token=None)`; never `[UNK]`, so the hashing
    projection still sees its characters). An empty token gives no pieces.

    Results are cached per distinct token (the cache is cleared when it reaches `cache_size`
    entries, so memory stays bounded under distortion, which makes many one-off tokens).

    Args:
      vocabulary: a list of pieces, or the path of a vocabulary file.
      suffix_indicator: the continuation prefix (`##`).
      max_bytes_per_word: tokens longer than this many UTF-8 bytes are kept whole.
      cache_size: maximum number of cached tokens.

    Example:
    >>> splitter = WordpieceSplitter(["they", "##'", "##re", "great", "##est"])
    >>> splitter.split("greatest")
    ['great', '##est']
    >>> splitter.split("xyz")  # no match: kept whole, not [UNK]
    ['xyz']
    """

    def __init__(self, vocabulary: Union[Sequence[str], str, os.PathLike],
                 suffix_indicator: str = SUFFIX_INDICATOR,
                 max_bytes_per_word: int = DEFAULT_MAX_BYTES_PER_WORD,
                 cache_size: int = 500_000):
        if isinstance(vocabulary, (str, os.PathLike)):
            vocabulary = load_vocabulary(vocabulary)
        vocabulary = list(vocabulary)
        _check_vocabulary(vocabulary)
        if not suffix_indicator:
            raise ValueError("suffix_indicator must be a non-empty string")
        self.vocabulary = vocabulary
        self.suffix_indicator = suffix_indicator
        self.max_bytes_per_word = int(max_bytes_per_word)
        self.cache_size = int(cache_size)
        self._vocab = frozenset(vocabulary)
        # Longest candidates worth looking up, in characters: a pure speed-up (no longer piece
        # can match), so the result is the same as trying every length.
        n = len(suffix_indicator)
        heads = [len(p) for p in vocabulary]
        tails = [len(p) - n for p in vocabulary if p.startswith(suffix_indicator) and len(p) > n]
        self._max_head = max(heads, default=0)
        self._max_tail = max(tails, default=0)
        self._cache: Dict[str, tuple] = {}

    def __len__(self) -> int:
        return len(self.vocabulary)

    def split(self, token: str) -> List[str]:
        """The pieces of one token (a new list; see the class docstring for the rule)."""
        return list(self.split_cached(token))

    def split_cached(self, token: str) -> tuple:
        """Like `split` but returns the cached tuple itself (do not mutate; for hot loops)."""
        pieces = self._cache.get(token)
        if pieces is None:
            pieces = self._split(token)
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
            self._cache[token] = pieces
        return pieces

    def split_tokens(self, tokens: Sequence[str]) -> List[List[str]]:
        """The pieces of each token."""
        return [list(self.split_cached(t)) for t in tokens]

    def _split(self, token: str) -> tuple:
        if not token:
            return ()
        if len(token.encode("utf-8", "surrogatepass")) > self.max_bytes_per_word:
            return (token,)
        vocab = self._vocab
        suffix = self.suffix_indicator
        pieces = []
        start, n = 0, len(token)
        while start < n:
            longest = self._max_tail if start else self._max_head
            end = min(n, start + longest)
            while end > start:
                piece = token[start:end]
                if start:
                    piece = suffix + piece
                if piece in vocab:
                    break
                end -= 1
            if end == start:
                return (token,)
            pieces.append(piece)
            start = end
        return tuple(pieces)

    def split_with_tf_text(self, tokens: Sequence[str]) -> List[List[str]]:
        """The pieces tensorflow-text's `WordpieceTokenizer` gives (the reference; slow, imports TF)."""
        import tensorflow as tf
        import tensorflow_text as tf_text

        table = getattr(self, "_tf_table", None)
        if table is None:
            keys = tf.constant(self.vocabulary)
            ids = tf.range(len(self.vocabulary), dtype=tf.int64)
            table = tf.lookup.StaticVocabularyTable(
                tf.lookup.KeyValueTensorInitializer(keys, ids), num_oov_buckets=1)
            self._tf_table = table
        tokenizer = tf_text.WordpieceTokenizer(
            table, suffix_indicator=self.suffix_indicator,
            max_bytes_per_word=self.max_bytes_per_word, token_out_type=tf.string,
            unknown_token=None)
        if not tokens:
            return []
        out = tokenizer.tokenize(tf.constant(list(tokens), dtype=tf.string)).to_list()
        return [[p.decode("utf-8") for p in pieces] for pieces in out]

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the vocabulary file (one piece per line)."""
        save_vocabulary(self.vocabulary, path)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], **kwargs) -> "WordpieceSplitter":
        return cls(load_vocabulary(path), **kwargs)

    def get_config(self) -> dict:
        """JSON-serialisable; holds the vocabulary itself so that the config is self-contained."""
        return {"vocabulary": list(self.vocabulary), "suffix_indicator": self.suffix_indicator,
                "max_bytes_per_word": self.max_bytes_per_word}

    @classmethod
    def from_config(cls, config: dict) -> "WordpieceSplitter":
        return cls(**config)


def vocabulary_coverage(splitter: WordpieceSplitter, tokens: Iterable[str]) -> dict:
    """How a vocabulary splits some tokens: share kept whole unsplit, pieces per token histogram."""
    hist: collections.Counter = collections.Counter()
    unsplit = total = 0
    for token in tokens:
        pieces = splitter.split_cached(token)
        total += 1
        hist[len(pieces)] += 1
        if len(pieces) == 1 and token not in splitter._vocab:
            unsplit += 1
    return {"tokens": total, "kept_whole_unmatched": unsplit,
            "pieces_per_token": dict(sorted(hist.items()))}

