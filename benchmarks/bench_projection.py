"""Cost of the hashing projections: host featurization throughput and in-graph latency share.

host: NumPy featurization on one core (the process is pinned to --cpu) of MTOP's training tokens
  (six languages, lower-cased and NFKC-normalised by the TextEncoder, 24 chars per piece):
  * MinHash (64 hashes, trigrams, m=1024): uncached vectorised path to the Bloom buckets (the
    sparse form of the features: a dense count row is a scatter of them) and to dense counts;
    cached (MinHashFeaturizer, fingerprint cache per distinct piece) cold and warm; in token
    form and in WordPiece form, fed --chunk tokens per call; and on padded batches of 256
    utterances [256, 64, 6, 24] as a training pipeline holds them (tokens/s counts real tokens);
  * ternary (512 and 4096 features): uncached and cached (per distinct token).
  Each figure is the best of --repeat runs.

graph: int8 TFLite latency on one thread of
  * full: MinHashProjection(m=1024, w=1) + a Base-sized pNLP-Mixer stand-in (bottleneck Dense
    3072->256, 2 mixer blocks: token-mixing MLP 64->64->64 and channel-mixing MLP 256->256->256
    with GELU, residuals, LayerNorm; intent and slot heads), input int32 [1, 64, 6, 24];
  * rest: the same stand-in fed with int8 features [1, 64, 3072];
  * proj: the projection alone;
  on --graph-examples MTOP English eval utterances in WordPiece form, each timed alone with a
  microsecond loop (the benchmark tool's 10 us resolution is too coarse). Reports the medians
  and the projection's share of the full model: proj / full, and (full - rest) / full.

scan: builds 'projection + one Dense(256)' int8 models of both layers and prints the flatbuffer
  scan (op counts, input/output types, custom/Flex/float ops), and times the ternary projection.

Usage:
  python benchmarks/bench_projection.py [host|graph|scan|all] [--datasets DIR] [--cpu 0]
      [--repeat 3] [--vocab FILE] [--graph-examples 300] [--chunk 8192]
"""
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from prado_tiny.bench.machine import describe_machine  # noqa: E402

from prado_tiny.data.text_encoder import TextEncoder  # noqa: E402
from prado_tiny.data.wordpiece import learn_vocabulary, load_vocabulary  # noqa: E402
from prado_tiny.layers import minhash_projection as M  # noqa: E402
from prado_tiny.layers import ternary_projection as TP  # noqa: E402

LANGUAGES = ("en", "de", "es", "fr", "hi", "th")
DEFAULT_DATASETS = os.path.join(os.path.dirname(REPO), "shared", "datasets")


def read_utterances(datasets: str, languages=LANGUAGES, split: str = "train"):
    out = []
    for lang in languages:
        with open(os.path.join(datasets, "mtop", lang, f"{split}.txt"), encoding="utf-8") as f:
            out += [line.split("\t")[0] for line in f if line.strip()]
    return out


def encoder_with_vocabulary(datasets: str, vocab_file=None) -> TextEncoder:
    """A TextEncoder (64 tokens, 24 chars, 6 pieces) with a WordPiece vocabulary: from
    `vocab_file`, or learned (4000 pieces) on MTOP's six training sets."""
    plain = TextEncoder()
    if vocab_file:
        vocab = load_vocabulary(vocab_file)
    else:
        tokens = [[t for t, _, _ in plain.tokenize(u)] for u in read_utterances(datasets)]
        vocab = learn_vocabulary(tokens, 4000, normalize=plain.normalize_token)
    return TextEncoder(wordpiece=vocab)


def token_arrays(enc: TextEncoder, utterances):
    """All tokens of `utterances` (occurrences, in order) as [N, 1, 24] and [N, 6, 24] rows."""
    tokens = [t for u in utterances for t, _, _ in enc.tokenize(u)]
    chunks = [tokens[i:i + enc.max_tokens] for i in range(0, len(tokens), enc.max_tokens)]
    whole = enc.encode_tokens_batch(chunks).reshape(-1, 1, enc.max_chars)
    pieces = enc.encode_subwords_batch(chunks).reshape(-1, enc.max_pieces, enc.max_chars)
    live = (whole > 0).any(axis=(1, 2))
    return tokens, np.ascontiguousarray(whole[live]), np.ascontiguousarray(pieces[live])


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def chunked(fn, x, size):
    for i in range(0, len(x), size):
        fn(x[i:i + size])


def run_host(args, enc):
    utterances = read_utterances(args.datasets)
    _, whole, pieces = token_arrays(enc, utterances)
    n = len(whole)
    size = args.chunk
    print(f"host featurization, one core (cpu {args.cpu}); {len(utterances)} MTOP training "
          f"utterances, {n} tokens, fed in chunks of {size} tokens; best of {args.repeat}")
    rows = []
    for form, x in (("token form [N, 1, 24]", whole), ("WordPiece form [N, 6, 24]", pieces)):
        def buckets_uncached(part):
            M.minhash_buckets_np(M.token_fingerprints_np(part), 64, 1024)

        def dense_uncached(part):
            b, ne = M.minhash_buckets_np(M.token_fingerprints_np(part), 64, 1024)
            M.bloom_counts_np(b, ne, 1024)

        t = best(lambda: chunked(buckets_uncached, x, size), args.repeat)
        rows.append((f"MinHash 64x3-gram, {form}: uncached -> Bloom buckets", n / t))
        sub = x[:100000]
        t = best(lambda: chunked(dense_uncached, sub, size), args.repeat)
        rows.append((f"MinHash 64x3-gram, {form}: uncached -> dense counts [N, 1024] float32",
                     len(sub) / t))
        feat = M.MinHashFeaturizer()
        t0 = time.perf_counter()
        chunked(feat.buckets, x, size)
        rows.append((f"MinHash 64x3-gram, {form}: cached, cold (first epoch, empty cache)",
                     n / (time.perf_counter() - t0)))
        t = best(lambda: chunked(feat.buckets, x, size), args.repeat)
        rows.append((f"MinHash 64x3-gram, {form}: cached, warm ({len(feat)} pieces cached)", n / t))
    # Padded batches as a training pipeline holds them: [256 utterances, 64, 6, 24].
    batches = [enc.encode_texts(utterances[i:i + 256]).subwords
               for i in range(0, min(len(utterances), 20480), 256)]
    real = sum(int((b > 0).any(axis=(2, 3)).sum()) for b in batches)
    feat = M.MinHashFeaturizer()
    for b in batches:
        feat.buckets(b)
    t = best(lambda: [feat.buckets(b) for b in batches], args.repeat)
    rows.append((f"MinHash 64x3-gram, padded batches [256, 64, 6, 24]: cached, warm", real / t))
    t = best(lambda: [M.minhash_buckets_np(M.minhash_fingerprints_np(b)) for b in batches],
             args.repeat)
    rows.append((f"MinHash 64x3-gram, padded batches [256, 64, 6, 24]: uncached", real / t))
    tok = whole[:, 0, :]
    for f in (512, 4096):
        sub = tok[:50000] if f > 512 else tok
        t = best(lambda: chunked(lambda p: TP.ternary_features_np(p, f, dtype=np.int8), sub, size),
                 args.repeat)
        rows.append((f"ternary F={f}: uncached -> int8 features", len(sub) / t))
        feat = TP.TernaryFeaturizer(f)
        chunked(lambda p: feat.features(p, np.int8), sub, size)
        t = best(lambda: chunked(lambda p: feat.features(p, np.int8), sub, size), args.repeat)
        rows.append((f"ternary F={f}: cached, warm", len(sub) / t))
    width = max(len(r[0]) for r in rows)
    for name, rate in rows:
        print(f"  {name:<{width}}  {rate:>11,.0f} tokens/s")


# ---------------------------------------------------------------------------------------------
# In-graph latency.

def base_standin(features, tokens=64, bottleneck=256, num_intents=117, num_slots=157):
    """A Base-sized pNLP-Mixer stand-in on [batch, tokens, features] float features."""
    import tf_keras as keras
    h = keras.layers.Dense(bottleneck)(features)
    for _ in range(2):
        y = keras.layers.LayerNormalization()(h)
        y = keras.layers.Permute((2, 1))(y)
        y = keras.layers.Dense(tokens, activation="gelu")(y)
        y = keras.layers.Dense(tokens)(y)
        h = keras.layers.Add()([h, keras.layers.Permute((2, 1))(y)])
        z = keras.layers.LayerNormalization()(h)
        z = keras.layers.Dense(bottleneck, activation="gelu")(z)
        z = keras.layers.Dense(bottleneck)(z)
        h = keras.layers.Add()([h, z])
    intent = keras.layers.Dense(num_intents)(keras.layers.GlobalAveragePooling1D()(h))
    slots = keras.layers.Dense(num_slots)(h)
    return [intent, slots]


def convert(model, samples):
    import tensorflow as tf
    from prado_tiny.export.inspect import fold_exact_int8_casts
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s] for s in samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return fold_exact_int8_casts(conv.convert())


def latencies(model_bytes, inputs, loops=3):
    """Per-input median invoke time (microseconds) over `loops` passes, one thread."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=model_bytes, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    for x in inputs[:20]:
        it.set_tensor(d["index"], x)
        it.invoke()
    per = np.zeros((loops, len(inputs)))
    for r in range(loops):
        for i, x in enumerate(inputs):
            it.set_tensor(d["index"], x)
            t0 = time.perf_counter()
            it.invoke()
            per[r, i] = time.perf_counter() - t0
    return np.median(per, axis=0) * 1e6


def run_graph(args, enc):
    import tf_keras as keras
    from prado_tiny.export.inspect import check_builtin_int8
    utterances = read_utterances(args.datasets, ("en",), "eval")[:args.graph_examples]
    x = enc.encode_texts(utterances).subwords  # [N, 64, 6, 24]
    inputs = [x[i:i + 1] for i in range(len(x))]
    calib = inputs[:200]
    proj = M.MinHashProjection(num_hashes=64, ngram_size=3, bloom_size=1024, window=1)
    inp = keras.Input(x.shape[1:], batch_size=1, dtype="int32")
    feats = proj(inp)
    full = keras.Model(inp, base_standin(feats))
    only = keras.Model(inp, feats)
    feat_inp = keras.Input((64, 3072), batch_size=1)
    rest = keras.Model(feat_inp, base_standin(feat_inp))
    float_feats = [only.predict(s, verbose=0) for s in calib]
    models = {"full": convert(full, calib), "proj": convert(only, calib),
              "rest": convert(rest, float_feats)}
    out_dir = tempfile.mkdtemp(prefix="bench_projection_")
    for name, data in models.items():
        with open(os.path.join(out_dir, name + ".tflite"), "wb") as f:
            f.write(data)
        report = check_builtin_int8(data)
        print(f"{name}.tflite: {len(data):,} bytes, {len(report.ops)} ops, builtin-only int8: "
              f"{'yes' if report.ok else 'NO: ' + '; '.join(report.violations[:3])}")
    print(f"models written to {out_dir}")
    # The rest model reads the projection's int8 output (scale 1, zero point 0) re-quantized to
    # its own input scale: feed it the real features of each utterance.
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=models["rest"])
    scale, zero = it.get_input_details()[0]["quantization"]
    rest_inputs = [np.clip(np.round(only.predict(s, verbose=0) / scale) + zero, -128, 127)
                   .astype(np.int8) for s in inputs]
    lat = {"full": latencies(models["full"], inputs), "proj": latencies(models["proj"], inputs),
           "rest": latencies(models["rest"], rest_inputs)}
    tokens = (x > 0).any(axis=(2, 3)).sum(axis=1)
    print(f"int8 TFLite, 1 thread, {len(inputs)} MTOP en eval utterances (median "
          f"{int(np.median(tokens))} tokens, max {tokens.max()}); microseconds per utterance:")
    for name in ("full", "rest", "proj"):
        v = lat[name]
        print(f"  {name:<5} median {np.median(v):8.1f}  mean {v.mean():8.1f}  p90 "
              f"{np.percentile(v, 90):8.1f}")
    med = {k: float(np.median(v)) for k, v in lat.items()}
    print(f"projection share of the full model: proj/full = {med['proj'] / med['full']:.1%}, "
          f"(full - rest)/full = {(med['full'] - med['rest']) / med['full']:.1%}")
    long_in = np.zeros_like(x[:1])
    long_in[0, :, 0, :10] = ord("x")
    long_in[0, :, 1, :6] = [35, 35, 97, 98, 99, 100]
    lf, lp = latencies(models["full"], [long_in], 20)[0], latencies(models["proj"], [long_in], 20)[0]
    print(f"worst-case-sized input (64 tokens x 2 pieces, 10 chars): full {lf:.1f} us, proj "
          f"{lp:.1f} us ({lp / lf:.1%})")


def run_scan(args, enc):
    """Scans 'projection + one Dense' int8 models of both layers and prints what it finds."""
    import tf_keras as keras
    from prado_tiny.export.inspect import check_builtin_int8
    utterances = read_utterances(args.datasets, ("en",), "eval")[:64]
    encoded = enc.encode_texts(utterances)
    ternary_time = None
    for name, x, layer in (
            ("MinHashProjection(64 hashes, 3-grams, m=1024, w=1) + Dense(256)", encoded.subwords,
             M.MinHashProjection(num_hashes=64, ngram_size=3, bloom_size=1024, window=1)),
            ("TernaryProjection(F=512) + Dense(256)", encoded.codepoints,
             TP.TernaryProjection(num_features=512))):
        samples = [x[i:i + 1] for i in range(len(x))]
        inp = keras.Input(x.shape[1:], batch_size=1, dtype="int32")
        data = convert(keras.Model(inp, keras.layers.Dense(256)(layer(inp))), samples)
        report = check_builtin_int8(data)
        print(f"--- {name}")
        print(report.summary())
        if isinstance(layer, TP.TernaryProjection):
            only = convert(keras.Model(inp, layer(inp)), samples)
            ternary_time = np.median(latencies(only, samples))
    print(f"TernaryProjection(F=512) alone, int8 TFLite, 1 thread: median {ternary_time:.1f} us per "
          f"MTOP en eval utterance")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="?", default="all", choices=("host", "graph", "scan", "all"))
    parser.add_argument("--datasets", default=DEFAULT_DATASETS)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vocab", default=None)
    parser.add_argument("--graph-examples", type=int, default=300)
    parser.add_argument("--chunk", type=int, default=8192, help="tokens per host call")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    print("machine:", describe_machine())
    print("command:", " ".join([os.path.relpath(sys.executable, REPO) if False else sys.executable]
                               + sys.argv))
    enc = encoder_with_vocabulary(args.datasets, args.vocab)
    print(f"WordPiece vocabulary: {len(enc.wordpiece)} pieces "
          f"({'from ' + args.vocab if args.vocab else 'learned on MTOP train, six languages'})")
    if args.what in ("host", "all"):
        run_host(args, enc)
    if args.what in ("graph", "all"):
        run_graph(args, enc)
    if args.what in ("scan", "all"):
        run_scan(args, enc)


if __name__ == "__main__":
    main()
