"""Hash primitives shared by the projection layers, in NumPy and TensorFlow, bit for bit.

The projections of pQRNN (ternary) and pNLP-Mixer (MinHash) must run inside an int8 TFLite model
built from builtin ops only, and on the host (NumPy) where training precomputes its features. Both
sides run the *same* functions of this module: each function takes an `ops` backend (`NP` or
`TF`) and uses only the integer operations below, so the two cannot drift apart.

TFLite ops in an exported projection (all builtin; the arithmetic is int32 and bit-exact against
TF, ../shared/STACK.md): MUL, ADD, SUB, FLOOR_MOD, BITWISE_XOR, RIGHT_SHIFT, SUM, REDUCE_MIN,
REDUCE_MAX, MAXIMUM, GREATER, EQUAL, CAST, GATHER, SCATTER_ND, and the shape ops RESHAPE, SLICE,
STRIDED_SLICE, CONCATENATION, PACK, SHAPE, EXPAND_DIMS, SQUEEZE, PAD, ZEROS_LIKE. No AND, OR or
left shift (TFLite has no int32 builtin for them). Measured on this project's machine: MUL, ADD,
SUB, SUM, SLICE and CAST run at 0.2-0.5 ns per int32 element, FLOOR_MOD, XOR, RIGHT_SHIFT and
MAXIMUM at 1.4-2.6 ns, STRIDED_SLICE and GATHER at 3-8 ns, and broadcasting onto a new axis takes
a slow path: the layers trim padding first (`trim_padding_tf`) and keep the slow ops off large
tensors.

Hash definitions (all constants derive from the layer's seed):

* Character residues: `r = c mod p` for the two primes `p1, p2 < 2^15` (POLY_PRIMES). Their product
  exceeds 0x10FFFF, so the pair determines a codepoint. Any int32 is safe; values <= 0 are padding.
* Row hash (a token or piece hashed whole): `h_j = sum_i r_i * W[i, j] mod p_j` with
  seed-derived position weights `W[i, j]` in [1, 1024), summed in chunks of 64 characters.
* n-gram hash at position i: `sum_{k<n} r_{i+k} * W[k, j] mod p_j` (so an n-gram hashes like the
  row holding just that n-gram).
* Element hash: a keyed 4-round Feistel permutation of the pair `(h_1, h_2)` (two 15-bit halves),
  giving a 30-bit value `x`.
* MinHash key of hash k: `rot_g(x) XOR s_k` with g = k mod 8 (eight rotated views of x) and a
  30-bit seed `s_k`; the token's fingerprint is the minimum over its elements; bucket of hash k:
  `((v >> 15) * B_k + v mod 2^15) mod 1048573 mod m` for the minimum v.
* Ternary word b of a token: the keyed Feistel permutation with the keys of lane b of its row
  hash; bytes 0-2 of each word give 4 ternary values each (bit pair (b0, b1) -> b0 - b1).

Overflow argument. int32 overflow is undefined behaviour in TFLite's kernels, so every
intermediate value stays in [0, 2^31) (SUB results may be negative but are small):

* residues are below `p < 2^15`; a weighted term `r * W < 2^15 * 2^10`; a chunk of at most 64
  terms sums to at most 64 * 32748 * 1023 = 2,144,077,056 < 2^31 - 1.
* Feistel rounds work on 15-bit halves `l, r`: `r * M + K` with `M < 2^16`, `K < 2^15` is at most
  (2^15-1)(2^16-1) + 2^15 - 1 < 2^31; the round value `mod Q` (`Q < 2^15`) XORed into a 15-bit
  half stays a 15-bit half. A hash value `l * 2^15 + r` is below 2^30.
* A rotation of a 30-bit value, `(x >> s) + (x mod 2^s) * 2^(30-s)`, is below 2^30; invalid
  MinHash elements get 2^30 added (below 2^31, above every valid key).
* MinHash bucket: `(v >> 15) * B + (v mod 2^15)` with `B < 2^16` is below 2^31.

Determinism: every constant derives from the integer seed through SplitMix64 on Python integers
(no `hash()`, no NumPy RNG stream, no process state), so a fresh process on any machine computes
the same features.
"""
from __future__ import annotations

import functools
from typing import List, Tuple

import numpy as np

# ---------------------------------------------------------------------------------------------
# Constants.

#: Bits of a hash value (two 15-bit halves). Bit 30 is the MinHash padding flag.
HASH_BITS = 30
HALF_BITS = 15
HALF = 1 << HALF_BITS
#: Added to the MinHash key of an invalid (padding) element: larger than every valid key.
INVALID_KEY = 1 << HASH_BITS
#: The row and n-gram hashes run modulo two primes below 2^15.
POLY_PRIMES = (32749, 32719)
#: Position weights are in [1, WEIGHT_BOUND); rows are summed in chunks of CHUNK characters.
WEIGHT_BOUND = 1024
CHUNK = 64
#: One prime below 2^15 per Feistel round (4 rounds).
FEISTEL_PRIMES = (32717, 32713, 32707, 32693)
#: The MinHash bucket finaliser reduces modulo this prime (< 2^20) before `mod m`.
BUCKET_PRIME = 1048573
#: Codepoint of '#': a WordPiece continuation piece starts with two of them.
HASH_MARK = 35
#: Largest Unicode codepoint.
MAX_CODEPOINT = 0x10FFFF
#: Number of rotated views of an element hash used by the MinHash orderings (see `minhash_keys`).
MINHASH_VIEWS = 8
#: Bytes read from one ternary word (bits 0-23), four ternary features per byte.
WORD_BYTES = 3
TERNARY_PER_WORD = 4 * WORD_BYTES

_MASK64 = (1 << 64) - 1


def splitmix64(state: int) -> Tuple[int, int]:
    """One SplitMix64 step on Python ints: returns (new_state, 64-bit output)."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def derive_ints(seed: int, tag: str, count: int, low: int, high: int) -> List[int]:
    """`count` integers in [low, high) from (seed, tag), the same in every process.

    The tag (FNV-1a over its UTF-8 bytes) separates the constant families of one seed.
    """
    if not 0 <= low < high:
        raise ValueError(f"bad range [{low}, {high})")
    h = 0xCBF29CE484222325
    for b in tag.encode("utf-8"):
        h = ((h ^ b) * 0x100000001B3) & _MASK64
    state = (h ^ (int(seed) & _MASK64)) & _MASK64
    out = []
    for _ in range(count):
        state, z = splitmix64(state)
        out.append(low + z % (high - low))
    return out


def _frozen(values, shape=None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.int32)
    if shape is not None:
        arr = arr.reshape(shape)
    arr.setflags(write=False)
    return arr


# ---------------------------------------------------------------------------------------------
# Backends: the integer operations, with identical semantics (floor modulo, right shift of
# non-negative values, int32 in and out). Sizes passed to `slice` may be TF scalars.

class _NumpyOps:
    name = "numpy"

    @staticmethod
    def const(value):
        return np.asarray(value, dtype=np.int32)

    mul = staticmethod(np.multiply)
    add = staticmethod(np.add)
    sub = staticmethod(np.subtract)
    mod = staticmethod(np.mod)  # floor modulo, as FLOOR_MOD
    xor = staticmethod(np.bitwise_xor)
    rshift = staticmethod(np.right_shift)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def greater(a, b):
        return np.greater(a, b).astype(np.int32)

    @staticmethod
    def equal(a, b):
        return np.equal(a, b).astype(np.int32)

    @staticmethod
    def reduce_sum(x, axis):
        return np.sum(x, axis=axis, dtype=np.int32)

    @staticmethod
    def reduce_min(x, axis):
        return np.min(x, axis=axis)

    @staticmethod
    def reduce_max(x, axis):
        return np.max(x, axis=axis)

    @staticmethod
    def reshape(x, shape):
        return np.reshape(x, shape)

    @staticmethod
    def expand(x, axis):
        return np.expand_dims(x, axis)

    @staticmethod
    def concat(xs, axis):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def dim(x, axis):
        return int(np.shape(x)[axis])

    @staticmethod
    def slice(x, begin, size):
        """Like tf.slice: `size[i] == -1` takes the rest of axis i."""
        index = tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))
        return x[index]

    @staticmethod
    def gather(params, indices):
        return np.asarray(params)[indices]


class _TFOps:
    name = "tensorflow"

    @staticmethod
    def _tf():
        import tensorflow as tf  # imported lazily: the host path needs only NumPy
        return tf

    @classmethod
    def const(cls, value):
        return cls._tf().constant(np.asarray(value, dtype=np.int32))

    @classmethod
    def mul(cls, a, b):
        return cls._tf().multiply(a, b)

    @classmethod
    def add(cls, a, b):
        return cls._tf().add(a, b)

    @classmethod
    def sub(cls, a, b):
        return cls._tf().subtract(a, b)

    @classmethod
    def mod(cls, a, b):
        return cls._tf().math.floormod(a, b)

    @classmethod
    def xor(cls, a, b):
        return cls._tf().bitwise.bitwise_xor(a, b)

    @classmethod
    def rshift(cls, a, b):
        return cls._tf().bitwise.right_shift(a, b)

    @classmethod
    def maximum(cls, a, b):
        return cls._tf().maximum(a, b)

    @classmethod
    def greater(cls, a, b):
        tf = cls._tf()
        return tf.cast(tf.greater(a, b), tf.int32)

    @classmethod
    def equal(cls, a, b):
        tf = cls._tf()
        return tf.cast(tf.equal(a, b), tf.int32)

    @classmethod
    def reduce_sum(cls, x, axis):
        return cls._tf().reduce_sum(x, axis=axis)

    @classmethod
    def reduce_min(cls, x, axis):
        return cls._tf().reduce_min(x, axis=axis)

    @classmethod
    def reduce_max(cls, x, axis):
        return cls._tf().reduce_max(x, axis=axis)

    @classmethod
    def reshape(cls, x, shape):
        return cls._tf().reshape(x, shape)

    @classmethod
    def expand(cls, x, axis):
        return cls._tf().expand_dims(x, axis)

    @classmethod
    def concat(cls, xs, axis):
        return cls._tf().concat(xs, axis=axis)

    @classmethod
    def dim(cls, x, axis):
        """The static size of an axis where known, else a dynamic scalar."""
        static = x.shape[axis]
        return int(static) if static is not None else cls._tf().shape(x)[axis]

    @classmethod
    def slice(cls, x, begin, size):
        tf = cls._tf()
        if all(isinstance(v, int) for v in list(begin) + list(size)):
            return tf.slice(x, begin, size)
        return tf.slice(x, tf.stack([tf.cast(v, tf.int32) for v in begin]),
                        tf.stack([tf.cast(v, tf.int32) for v in size]))

    @classmethod
    def gather(cls, params, indices):
        return cls._tf().gather(params, indices)


NP = _NumpyOps()
TF = _TFOps()


def take(ops, x, axis: int, start, size):
    """`size` entries of `x` from `start` along `axis` (a negative axis counts from the end)."""
    rank = len(x.shape)
    axis %= rank
    begin = [0] * rank
    sizes = [-1] * rank
    begin[axis] = start
    sizes[axis] = size
    return ops.slice(x, begin, sizes)


# ---------------------------------------------------------------------------------------------
# Per-seed constants.

@functools.lru_cache(maxsize=256)
def position_weights(seed: int, length: int) -> np.ndarray:
    """int32 [length, 2]: the weight of character i in the hash modulo POLY_PRIMES[j]."""
    return _frozen(derive_ints(seed, "weights", 2 * length, 1, WEIGHT_BOUND), (length, 2))


@functools.lru_cache(maxsize=256)
def feistel_keys(seed: int, tag: str, lanes: int = 1) -> Tuple[Tuple[np.ndarray, np.ndarray], ...]:
    """Per round (multipliers int32[lanes] in [2^15, 2^16), offsets int32[lanes] in [0, Q)).

    `lanes` independent permutations (e.g. one per ternary word) share the round primes."""
    rounds = []
    for r, q in enumerate(FEISTEL_PRIMES):
        rounds.append((_frozen(derive_ints(seed, f"{tag}/M{r}", lanes, HALF, 2 * HALF)),
                       _frozen(derive_ints(seed, f"{tag}/K{r}", lanes, 0, q))))
    return tuple(rounds)


@functools.lru_cache(maxsize=64)
def minhash_constants(seed: int, num_hashes: int) -> Tuple[int, np.ndarray, np.ndarray]:
    """(views, xor seeds int32[num_hashes] below 2^30, bucket multipliers int32[num_hashes])."""
    views = min(MINHASH_VIEWS, num_hashes)
    seeds = _frozen(derive_ints(seed, "minhash/xor", num_hashes, 0, INVALID_KEY))
    mults = _frozen(derive_ints(seed, "minhash/bucket", num_hashes, HALF, 2 * HALF))
    return views, seeds, mults


def ternary_byte_table() -> np.ndarray:
    """int32 [256, 4]: byte -> four ternary values, bit(2i) - bit(2i+1): P(0)=1/2, P(+-1)=1/4."""
    b = np.arange(256)[:, None] >> (2 * np.arange(4))[None, :]
    return _frozen((b & 1) - ((b >> 1) & 1))


# ---------------------------------------------------------------------------------------------
# Row and n-gram hashing.

def char_residues(ops, codepoints):
    """[..., C] codepoints -> (r1, r2, valid): residues mod POLY_PRIMES and 0/1 validity.

    Any int32 is safe (floor modulo); values <= 0 are padding (residue 0, invalid). The two
    primes stay separate tensors: a broadcast onto a new axis is a slow path in TFLite.
    """
    valid = ops.greater(codepoints, ops.const(0))
    c = ops.mul(codepoints, valid)
    return ops.mod(c, ops.const(POLY_PRIMES[0])), ops.mod(c, ops.const(POLY_PRIMES[1])), valid


def _weight_columns(ops, seed: int, length, static_length: int):
    table = position_weights(seed, static_length)  # a prefix of the same stream for any length
    if isinstance(length, int):
        return ops.const(table[:length, 0]), ops.const(table[:length, 1])
    return (take(ops, ops.const(table[:, 0]), 0, 0, length),
            take(ops, ops.const(table[:, 1]), 0, 0, length))


def row_hash(ops, r1, r2, seed: int, static_length: int):
    """[..., C] residues -> (h1, h2) [...]: sum_i r_i W[i, j] mod p_j, in 64-char chunks.

    `static_length` is the largest C the tensors can have (C itself may be a dynamic size no
    larger than that; padding residues are 0 and add nothing).
    """
    length = ops.dim(r1, -1)
    out = []
    if static_length <= CHUNK:
        w = _weight_columns(ops, seed, length, static_length)
        for r, wj, p in zip((r1, r2), w, POLY_PRIMES):
            out.append(ops.mod(ops.reduce_sum(ops.mul(r, wj), axis=-1), ops.const(p)))
        return tuple(out)
    if not isinstance(length, int):
        raise ValueError("rows wider than 64 characters must have a static width")
    table = position_weights(seed, static_length)
    for j, (r, p) in enumerate(zip((r1, r2), POLY_PRIMES)):
        acc = None
        for start in range(0, length, CHUNK):
            size = min(CHUNK, length - start)
            part = ops.mul(take(ops, r, -1, start, size), ops.const(table[start:start + size, j]))
            part = ops.mod(ops.reduce_sum(part, axis=-1), ops.const(p))
            acc = part if acc is None else ops.mod(ops.add(acc, part), ops.const(p))
        out.append(acc)
    return tuple(out)


def _window(x, k: int, n: int):
    """x[..., k : C - (n - 1 - k)]: the k-th characters of the n-grams (constant slice bounds,
    so TF needs no shape arithmetic for a dynamic C)."""
    end = k - (n - 1)
    return x[..., k:end] if end < 0 else x[..., k:]


def ngram_hashes(ops, r1, r2, valid, n: int, seed: int):
    """Hashes and validity of the n-grams of each row: (g1, g2, ok), each [..., S], S = C - n + 1.

    The n-gram at position i hashes like a row holding just that n-gram; it is valid when its n
    characters are real. Requires C >= n.
    """
    weights = position_weights(seed, n)
    out = []
    for j, (r, p) in enumerate(zip((r1, r2), POLY_PRIMES)):
        acc = ops.mul(_window(r, 0, n), ops.const(int(weights[0, j])))
        for k in range(1, n):
            acc = ops.add(acc, ops.mul(_window(r, k, n), ops.const(int(weights[k, j]))))
        out.append(ops.mod(acc, ops.const(p)))
    ok = _window(valid, 0, n)
    for k in range(1, n):
        ok = ops.mul(ok, _window(valid, k, n))
    return out[0], out[1], ok


def feistel(ops, hi, lo, keys):
    """A keyed 4-round Feistel permutation of 30-bit values given as 15-bit halves.

    hi, lo: int32 tensors below 2^15, broadcastable against the key vectors. Returns the permuted
    (hi, lo), both below 2^15.
    """
    for (mult, off), q in zip(keys, FEISTEL_PRIMES):
        m = ops.const(mult if len(mult) > 1 else int(mult[0]))
        k = ops.const(off if len(off) > 1 else int(off[0]))
        f = ops.mod(ops.add(ops.mul(lo, m), k), ops.const(q))
        hi, lo = lo, ops.xor(hi, f)
    return hi, lo


def join_halves(ops, hi, lo):
    return ops.add(ops.mul(hi, ops.const(HALF)), lo)


def mix(ops, h1, h2, seed: int, tag: str):
    """A pair of residues (each below 2^15) -> 30-bit hash (keyed Feistel permutation)."""
    hi, lo = feistel(ops, h1, h2, feistel_keys(seed, tag))
    return join_halves(ops, hi, lo)


# ---------------------------------------------------------------------------------------------
# MinHash.

def token_elements(ops, pieces, ngram_size: int, seed: int, static_pieces: int, static_chars: int):
    """The MinHash elements of each token: ([N, E] 30-bit element hashes, [N, E] validity 0/1).

    pieces: int32 [N, P, C], the pieces of N tokens (P = 1 for whole tokens; P and C may be
    trimmed, dynamic sizes no larger than static_pieces, static_chars). Slots 0..S-1 are the
    n-grams of the first piece, valid when that piece is split into n-grams (it has at least
    `ngram_size` characters and does not start with '##'); slots S..S+P-1 are the pieces hashed
    whole, valid for every non-empty later piece (WordPiece continuation pieces) and for a first
    piece that is not split. With C < ngram_size (static) there are no n-gram slots. E = S + P.
    """
    r1, r2, valid = char_residues(ops, pieces)  # [N, P, C] each
    w1, w2 = row_hash(ops, r1, r2, seed, static_chars)  # [N, P]
    nchars = ops.reduce_sum(valid, axis=-1)  # [N, P]
    nonempty = ops.greater(nchars, ops.const(0))
    num_pieces = ops.dim(pieces, 1)
    if static_chars < ngram_size:
        return mix(ops, w1, w2, seed, "minhash/element"), nonempty
    first = [t[:, 0] for t in (r1, r2, valid)]  # [N, C]
    is_whole = ops.greater(ops.const(ngram_size), nchars[:, 0])  # [N]
    if static_chars >= 2:
        marks = ops.mul(ops.equal(pieces[:, 0, 0], ops.const(HASH_MARK)),
                        ops.equal(pieces[:, 0, 1], ops.const(HASH_MARK)))
        is_whole = ops.maximum(is_whole, marks)
    g1, g2, gvalid = ngram_hashes(ops, first[0], first[1], first[2], ngram_size, seed)  # [N, S]
    gvalid = ops.mul(gvalid, ops.expand(ops.sub(ops.const(1), is_whole), -1))
    # Whole slot of piece p: valid if non-empty and (p > 0 or the first piece is not split).
    later = [0] + [1] * (static_pieces - 1)
    later = ops.const(later[:num_pieces]) if isinstance(num_pieces, int) else \
        take(ops, ops.const(later), 0, 0, num_pieces)
    wvalid = ops.mul(nonempty, ops.maximum(ops.expand(is_whole, -1), later))
    h1 = ops.concat([g1, w1], axis=1)  # [N, S + P]
    h2 = ops.concat([g2, w2], axis=1)
    return mix(ops, h1, h2, seed, "minhash/element"), ops.concat([gvalid, wvalid], axis=1)


def rotations(ops, x, views: int):
    """[..., E] 30-bit values -> [..., E, views]: x rotated right by floor(30 g / views) bits."""
    shifts = [HASH_BITS * g // views for g in range(views)]
    xe = ops.expand(x, -1)
    right = ops.rshift(xe, ops.const(shifts))
    low = ops.mod(xe, ops.const([1 << s for s in shifts]))
    return ops.add(right, ops.mul(low, ops.const([1 << (HASH_BITS - s) for s in shifts])))


def minhash_fingerprints(ops, elements, valid, num_hashes: int, seed: int):
    """[N, E] element hashes and validity -> [N, H] minima over the elements of each token.

    Hash k orders the elements by `rot_g(x) XOR s_k` with g = k mod views: a single XOR per
    (element, hash), the only op on the expanded tensor. XOR with a seed alone would order every
    hash by the same binary trie of x (the Jaccard estimate's error doubles); 8 rotated views give
    8 different tries and bring the error within ~10% of ideal MinHash. Invalid elements get
    INVALID_KEY added: a token without valid elements gets minima >= INVALID_KEY.
    """
    views, seeds, _ = minhash_constants(seed, num_hashes)
    rot = rotations(ops, elements, views)  # [N, E, V]
    flag = ops.mul(ops.sub(ops.const(1), valid), ops.const(INVALID_KEY))
    rot = ops.add(rot, ops.expand(flag, -1))
    reps = -(-num_hashes // views)
    tiled = ops.concat([rot] * reps, axis=-1) if reps > 1 else rot  # column k = view k mod V
    if reps * views != num_hashes:
        tiled = tiled[..., :num_hashes]
    return ops.reduce_min(ops.xor(tiled, ops.const(seeds)), axis=1)


def minhash_buckets(ops, fingerprints, num_hashes: int, bloom_size: int, seed: int):
    """[..., H] minima -> ([..., H] buckets in [0, m), [...] 0/1 non-empty).

    The minimum `v` of hash k maps to `((v >> 15) * B_k + v mod 2^15) mod P mod m` (P =
    BUCKET_PRIME), so the H buckets of one element are independent draws, not XOR-shifts of
    each other.
    """
    _, _, mults = minhash_constants(seed, num_hashes)
    nonempty = ops.greater(ops.const(INVALID_KEY), fingerprints[..., 0])
    v = ops.mod(fingerprints, ops.const(INVALID_KEY))
    hi = ops.rshift(v, ops.const(HALF_BITS))
    lo = ops.sub(v, ops.mul(hi, ops.const(HALF)))
    y = ops.mod(ops.add(ops.mul(hi, ops.const(mults)), lo), ops.const(BUCKET_PRIME))
    return ops.mod(y, ops.const(bloom_size)), nonempty


# ---------------------------------------------------------------------------------------------
# Ternary.

def ternary_words(ops, tokens, num_features: int, seed: int, static_chars: int):
    """int32 [N, C] token rows -> ([N, W] 30-bit words, [N] 0/1 non-empty), W = ceil(F / 12).

    Each token is hashed whole (row hash); word b is a keyed 4-round Feistel permutation of that
    hash with the keys of lane b (independent per word); its three low bytes give 12 ternary
    features (`ternary_byte_table`).
    """
    words = -(-num_features // TERNARY_PER_WORD)
    r1, r2, valid = char_residues(ops, tokens)
    nonempty = ops.greater(ops.reduce_max(valid, axis=-1), ops.const(0))
    h1, h2 = row_hash(ops, r1, r2, seed, static_chars)  # [N]
    hi, lo = feistel(ops, ops.expand(h1, -1), ops.expand(h2, -1),
                     feistel_keys(seed, "ternary/word", words))  # [N, W] each
    return join_halves(ops, hi, lo), nonempty


def ternary_bytes(ops, words):
    """[N, W] words -> [N, 3 W] bytes (bits 0-7, 8-15, 16-23 of each word)."""
    shifted = ops.rshift(ops.expand(words, -1), ops.const([0, 8, 16]))
    return ops.reshape(ops.mod(shifted, ops.const(256)), [ops.dim(words, 0), -1])


# ---------------------------------------------------------------------------------------------
# Graph-side trimming of trailing padding.

def size_classes(size: int, floor: int = 1) -> np.ndarray:
    """int32 [size + 1]: extent v -> the next power of two >= max(v, floor), capped at `size`."""
    out = []
    for v in range(size + 1):
        k = 1
        while k < max(v, floor, 1):
            k *= 2
        out.append(min(k, size))
    return _frozen(out)


def trim_padding_tf(codepoints, min_chars: int = 1):
    """TF only: [B, T, P, C] -> the same without trailing all-padding tokens, pieces, characters.

    Exact: only padding (values <= 0, everywhere in the batch) is cut. The kept extents are
    rounded up to size classes (powers of two, capped at the static size; at least `min_chars`
    characters), so consecutive inputs mostly share shapes: TFLite re-prepares the ops after a
    dynamic tensor whenever its shape changes. Rows wider than CHUNK characters keep their width.
    Costs one REDUCE_MAX over the input plus work on the trimmed tensor; everything downstream
    then costs in proportion to the real text, not to the padded shape.
    """
    import tensorflow as tf
    _, t, p, c = codepoints.shape.as_list()

    def used(mask, size, floor):
        last = tf.reduce_max(mask * tf.range(1, size + 1, dtype=tf.int32))
        return tf.gather(tf.constant(size_classes(size, floor)), last)

    rows = tf.reshape(tf.reduce_max(tf.reshape(codepoints, [-1, c]), axis=1), [-1, t, p])
    rows = tf.cast(tf.greater(rows, 0), tf.int32)  # [B, T, P]: piece holds a real char
    t_used = used(tf.reduce_max(tf.reduce_max(rows, axis=2), axis=0), t, 1)
    p_used = used(tf.reduce_max(tf.reduce_max(rows, axis=1), axis=0), p, 1)
    x = tf.slice(codepoints, [0, 0, 0, 0], tf.stack([-1, t_used, p_used, -1]))
    if c > CHUNK:
        return x
    chars = tf.cast(tf.greater(tf.reduce_max(tf.reshape(x, [-1, c]), axis=0), 0), tf.int32)
    c_used = used(chars, c, min(min_chars, c))
    return tf.slice(x, [0, 0, 0, 0], tf.stack([-1, -1, -1, c_used]))


def check_codepoints(codepoints) -> np.ndarray:
    """Host inputs as a contiguous int32 array (raises on non-integer data)."""
    arr = np.asarray(codepoints)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"codepoints must be integers, got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.int32)
