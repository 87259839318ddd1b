"""A plain word-embedding BiLSTM through the toolkit's own readers and metrics: a yardstick.

It answers "how hard is this split for a model without pre-training?" with the same tokens,
labels, decoding and metrics as `prado-eval`, so a pNLP-Mixer figure can be read against it.
Not a shipped model (no QAT, no export): issue 5 brings the papers' baselines into prado-train.

Model: lower-cased word embedding (128, every training word), dropout 0.2, one BiLSTM layer (128
per direction), max-pooled intent head and per-token slot head; Adam 2e-3, batch 64.

Usage (from the repository root):
  python benchmarks/bilstm_reference.py --dataset=mtop --data_dir=../shared/datasets/mtop \
      --split=eval --languages=en --epochs=10
Prints the dev scores after every epoch and the per-language table of the last one.
"""
import argparse
import collections
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

import prado_tiny  # noqa: E402,F401  (Keras 2 before TensorFlow)
from prado_tiny.data import registry  # noqa: E402
from prado_tiny.data.vocab import LabelVocab  # noqa: E402
from prado_tiny.evaluation import headline, predictions, score  # noqa: E402
from prado_tiny.metrics import format_table  # noqa: E402


def encode(examples, words, vocab, max_len):
    x = np.zeros((len(examples), max_len), np.int32)
    slots = np.zeros((len(examples), max_len), np.int32)
    mask = np.zeros((len(examples), max_len), np.float32)
    intents = np.array([vocab.encode_intent(e.intent) for e in examples], np.int32)
    for i, e in enumerate(examples):
        toks = e.tokens[:max_len]
        x[i, :len(toks)] = [words.get(t.lower(), 1) for t in toks]
        slots[i, :len(toks)] = vocab.encode_slots(e.slots[:max_len])
        # Rows whose slots could not be aligned train the intent only, as in prado-train.
        mask[i, :len(toks)] = 0.0 if e.unaligned else 1.0
    return x, slots, intents, mask


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mtop")
    ap.add_argument("--data_dir", default=os.path.join(os.path.dirname(REPO), "shared", "datasets", "mtop"))
    ap.add_argument("--split", default="eval")
    ap.add_argument("--languages", default="en")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max_len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import tensorflow as tf
    import tf_keras as keras
    tf.keras.utils.set_random_seed(args.seed)

    langs = [x for x in args.languages.split(",") if x] or None
    train = list(registry.read_dataset(args.dataset, args.data_dir, "train", languages=langs))
    dev = list(registry.read_dataset(args.dataset, args.data_dir, args.split, languages=langs))
    vocab = LabelVocab.from_examples(train)
    counts = collections.Counter(t.lower() for e in train for t in e.tokens)
    words = {w: i + 2 for i, w in enumerate(sorted(counts))}  # 0 padding, 1 unknown
    xt, st, it, mt = encode(train, words, vocab, args.max_len)
    xd = encode(dev, words, vocab, args.max_len)[0]

    inp = keras.Input((args.max_len,), dtype="int32")
    h = keras.layers.Embedding(len(words) + 2, 128, mask_zero=True)(inp)
    h = keras.layers.Dropout(0.2)(h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(128, return_sequences=True))(h)
    intent = keras.layers.Dense(vocab.num_intents)(keras.layers.GlobalMaxPooling1D()(h))
    slots = keras.layers.Dense(vocab.num_slot_tags)(h)
    model = keras.Model(inp, [intent, slots])
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(2e-3), loss=[ce, ce])
    params = model.count_params()
    print(f"bilstm_reference: {len(train)} train / {len(dev)} {args.split} examples, "
          f"{len(words):,} words, {params:,} parameters", flush=True)
    for epoch in range(args.epochs):
        t0 = time.time()
        model.fit(xt, [it, st], sample_weight=[np.ones(len(it)), mt], batch_size=64, epochs=1,
                  verbose=0)
        li, ls = model.predict(xd, batch_size=512, verbose=0)
        slot_logits = [ls[i, :min(len(e.tokens), args.max_len)] for i, e in enumerate(dev)]
        preds = predictions(dev, list(li), slot_logits, vocab)
        h = headline(score(dev, preds, vocab))
        print(f"  epoch {epoch + 1} ({time.time() - t0:.0f} s): exact match {100 * h['exact_match']:.2f}, "
              f"intent {100 * h['intent_accuracy']:.2f}, slot F1 {100 * h['slot_f1']:.2f}, "
              f"slot tag acc {100 * h['slot_tag_accuracy']:.2f}", flush=True)
    print(format_table(score(dev, preds, vocab)))


if __name__ == "__main__":
    main()
