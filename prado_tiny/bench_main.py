"""prado-bench: size, latency and memory of .tflite models on the host, Android or a Pi (issue #8).

Usage:
  prado-bench --models=A.tflite,B.tflite --target=local --output_json=FILE [--reference=mbert]
              [--metrics=A.json,B.json] [--output_md=FILE.md] [--output_png=FILE.png]
  prado-bench --models=A.tflite --target=adb --benchmark_binary=PATH [--serial=SERIAL]
  prado-bench --models=A.tflite --target=ssh --host=pi@raspberrypi [--ssh_port=22] [--ssh_key=KEY]
              [--remote_python=python3]

Each model is timed with --num_threads interpreter threads, pinned to one core per thread (the
last ones; --cpus to choose), after --warmup untimed invokes, over --runs invokes on real
utterances of --dataset/--split encoded by the model's own text encoder (random valid inputs for
a model without prado_tiny metadata). Size, parameters and MACs come from the flatbuffer.
A seq2seq parser (pQRNN-MAtt: give the encoder X.tflite, its X.decoder.tflite beside it) is one
record for the pair: bytes and parameters of both files; the invoke columns time the encoder, and
on --target=local `parse_latency_us` times whole utterances (`Predictor.predict`: the encoder, then
the host search over the decoder) greedy and with the model's beam, noted under the table. adb and
ssh have no host search: they time the encoder and one decoder step, and the record says so.
--reference=mbert adds an mBERT-shaped int8 encoder (random weights, same converter, same sequence
length; converted once and cached) and gives every model's size and latency ratio against it.
Prints a Markdown table; writes JSON (one record per model and target), Markdown and a PNG plot
of accuracy (from prado-eval --metrics_out files) against size and latency.
"""
import datetime
import os
import statistics

from absl import app, flags

from prado_tiny import common_flags

common_flags.define_data_flags(split_default="dev")
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_list("models", [], "Comma-separated .tflite files to benchmark.")
flags.DEFINE_enum("target", "local", ["local", "adb", "ssh"], "Where to run the benchmark.")
flags.DEFINE_integer("num_threads", 1, "Interpreter threads.")
flags.DEFINE_list("cpus", [], "CPUs to pin to (default: the last --num_threads CPUs of the target).")
flags.DEFINE_integer("warmup", 100, "Untimed invokes before timing (and untimed parses per "
                     "beam width of a seq2seq pair).")
flags.DEFINE_integer("runs", 1000, "Timed invokes per model (50 or more for the quiet p50); also "
                     "timed whole parses per beam width of a seq2seq pair on --target=local.")
flags.DEFINE_float("min_seconds", 10.0, "Keep timing each model past --runs until this many "
                   "seconds have passed: a shared machine slows whole seconds at a time, and the "
                   "quiet p50 needs quiet stretches (0: exactly --runs).")
flags.DEFINE_integer("repeat", 1, "Benchmark each model this many times (fresh process each); the "
                     "record keeps the repeat with the median p50 and reports the p50 spread.")
flags.DEFINE_integer("examples", 100, "Utterances of --dataset/--split used as inputs.")
flags.DEFINE_enum("reference", "none", ["none", "mbert"], "Add the mBERT-shaped reference model.")
flags.DEFINE_list("reference_config", [], "Overrides of the reference's shape, key=value "
                  "(num_layers, hidden, heads, intermediate, vocab_size, seq_len, ...).")
flags.DEFINE_string("reference_cache_dir", None, "Where the converted reference is cached "
                    "(default $PRADO_CACHE_DIR/reference or ~/.cache/prado_tiny/reference).")
flags.DEFINE_integer("reference_runs", 50, "Timed invokes of the reference (it is ~50x slower).")
flags.DEFINE_list("metrics", [], "prado-eval --metrics_out files: accuracy for the table and plot.")
flags.DEFINE_string("output_json", None, "Write one JSON record per model and target.")
flags.DEFINE_string("output_md", None, "Write the Markdown table.")
flags.DEFINE_string("output_png", None, "Write the plot of accuracy against size and latency.")
flags.DEFINE_integer("timeout", 1800, "Seconds one model's benchmark may take.")
# adb
flags.DEFINE_string("serial", None, "adb: the device's serial (needed when several are attached).")
flags.DEFINE_string("adb", None, "adb: the adb executable (default: adb on PATH).")
flags.DEFINE_string("benchmark_binary", None, "adb: TFLite's benchmark_model built for the device.")
# ssh
flags.DEFINE_string("host", None, "ssh: user@host of the board.")
flags.DEFINE_integer("ssh_port", 22, "ssh: sshd's port.")
flags.DEFINE_string("ssh_key", None, "ssh: private key file.")
flags.DEFINE_multi_string("ssh_option", [], "ssh: extra -o options (repeatable).")
flags.DEFINE_string("remote_python", "python3",
                    "ssh: the board's Python (with numpy and ai-edge-litert or tflite-runtime).")
flags.DEFINE_string("remote_dir", "/tmp/prado_bench", "ssh: folder for the model and runner.")
FLAGS = flags.FLAGS


def _reference_config():
    import dataclasses

    from prado_tiny.bench.reference import ReferenceConfig

    fields = {f.name for f in dataclasses.fields(ReferenceConfig)}
    overrides = {}
    for item in FLAGS.reference_config:
        key, _, value = item.partition("=")
        if key not in fields or not value.lstrip("-").isdigit():
            raise app.UsageError(f"--reference_config: {item!r} is not key=integer with key one of "
                                 f"{sorted(fields)}")
        overrides[key] = int(value)
    try:
        return ReferenceConfig(**overrides)
    except ValueError as e:
        raise app.UsageError(f"--reference_config: {e}") from None


def _benchmarker(texts=None):
    """-> function(path, token_lists, source, runs, warmup) -> BenchRecord for --target.

    Args:
      texts: the raw utterances of the token lists (local: what a seq2seq pair parses).
    """
    cpus = [int(c) for c in FLAGS.cpus] if FLAGS.cpus else None
    common = dict(num_threads=FLAGS.num_threads, cpus=cpus, min_seconds=FLAGS.min_seconds)
    if FLAGS.target == "local":
        from prado_tiny.bench.local import bench_local
        return lambda p, toks, src, runs, warmup: bench_local(
            p, toks, source=src, runs=runs, warmup=warmup, timeout=FLAGS.timeout,
            texts=texts if toks else None, **common)
    if FLAGS.target == "adb":
        from prado_tiny.bench.adb import AdbError, AdbTarget
        if not FLAGS.benchmark_binary:
            raise AdbError("--target=adb needs --benchmark_binary: TFLite's benchmark_model built "
                           "for the device (e.g. android_arm64)")
        t = AdbTarget(FLAGS.serial, FLAGS.adb, timeout=FLAGS.timeout)
        return lambda p, toks, src, runs, warmup: t.bench(p, FLAGS.benchmark_binary, toks,
                                                          source=src, runs=runs, warmup=warmup,
                                                          **common)
    from prado_tiny.bench.ssh import SshError, SshTarget
    if not FLAGS.host:
        raise SshError("--target=ssh needs --host=user@host")
    t = SshTarget(FLAGS.host, FLAGS.ssh_port, FLAGS.ssh_key, FLAGS.remote_python, FLAGS.remote_dir,
                  FLAGS.ssh_option, timeout=FLAGS.timeout)
    return lambda p, toks, src, runs, warmup: t.bench(p, toks, source=src, runs=runs,
                                                      warmup=warmup, **common)


def _repeated(bench, path, tokens, source, runs, warmup):
    """Runs `bench` --repeat times; the record of the median p50, with the spread in `extra`."""
    recs = [bench(path, tokens, source, runs, warmup) for _ in range(max(FLAGS.repeat, 1))]
    if len(recs) == 1:
        return recs[0]
    p50s = [r.latency_us for r in recs]
    mid = sorted(range(len(recs)), key=lambda i: p50s[i])[len(recs) // 2]
    rec = recs[mid]
    med = statistics.median(p50s)
    rec.extra["p50_repeats_us"] = p50s
    rec.extra["p50_spread_pct"] = 100.0 * (max(p50s) - min(p50s)) / med
    quiet = [r.quiet_p50_us for r in recs]
    if all(q is not None for q in quiet):
        rec.extra["quiet_p50_repeats_us"] = quiet
        rec.extra["quiet_p50_spread_pct"] = 100.0 * (max(quiet) - min(quiet)) / statistics.median(quiet)
    return rec


def main(argv):
    del argv
    from prado_tiny.bench import report
    from prado_tiny.bench.local import dataset_examples
    from prado_tiny.bench.machine import describe_machine

    if not FLAGS.models and FLAGS.reference == "none":
        raise app.UsageError("--models is required: comma-separated .tflite files "
                             "(or --reference=mbert alone)")
    missing = [m for m in FLAGS.models if not os.path.isfile(m)]
    if missing:
        raise app.UsageError(f"--models: not found: {', '.join(missing)}")
    if FLAGS.runs < 1 or FLAGS.warmup < 0 or FLAGS.num_threads < 1 or FLAGS.min_seconds < 0:
        raise app.UsageError("--runs and --num_threads must be at least 1, --warmup and "
                             "--min_seconds at least 0")
    try:
        metrics = {m: report.read_metrics(m) for m in FLAGS.metrics}
        ref_config = _reference_config() if FLAGS.reference == "mbert" else None
        examples = dataset_examples(FLAGS.dataset, FLAGS.data_dir, FLAGS.split, FLAGS.languages,
                                    FLAGS.examples)
        tokens = [list(ex.tokens) for ex in examples]
        source = f"{FLAGS.dataset} {FLAGS.split}"
        bench = _benchmarker([ex.utterance for ex in examples])
        records = []
        for path in FLAGS.models:
            print(f"prado-bench: {path} on {FLAGS.target} ...", flush=True)
            records.append(_repeated(bench, path, tokens, source, FLAGS.runs, FLAGS.warmup))
        if ref_config is not None:
            from prado_tiny.bench.reference import reference_tflite
            ref_path = reference_tflite(ref_config, FLAGS.reference_cache_dir)
            print(f"prado-bench: reference {os.path.basename(ref_path)} on {FLAGS.target} ...",
                  flush=True)
            ref = _repeated(bench, ref_path, None, source, FLAGS.reference_runs,
                            min(FLAGS.warmup, 2))
            ref.name, ref.reference = "mbert_shaped", True
            records.append(ref)
    except report.BenchError as e:
        raise app.UsageError(str(e)) from None
    report.apply_reference(records)
    report.attach_metrics(records, metrics)
    meta = {"date": datetime.date.today().isoformat(), "host": describe_machine(),
            "target": FLAGS.target, "num_threads": FLAGS.num_threads, "runs": FLAGS.runs,
            "warmup": FLAGS.warmup, "repeat": FLAGS.repeat, "inputs": f"{FLAGS.dataset} {FLAGS.split}"}
    table = report.markdown_table(records)
    print(f"\nprado-bench {meta['date']} on {meta['host']}; target {FLAGS.target}, "
          f"{FLAGS.num_threads} thread(s)\n")
    print(table)
    for r in records:
        if "p50_spread_pct" in r.extra:
            print(f"{r.name}: p50 over {len(r.extra['p50_repeats_us'])} repeats "
                  f"{', '.join(f'{v:,.0f}' for v in r.extra['p50_repeats_us'])} us, "
                  f"spread {r.extra['p50_spread_pct']:.1f}%", end="")
            if "quiet_p50_spread_pct" in r.extra:
                print(f"; quiet p50 {', '.join(f'{v:,.0f}' for v in r.extra['quiet_p50_repeats_us'])}"
                      f" us, spread {r.extra['quiet_p50_spread_pct']:.1f}%", end="")
            print()
    if FLAGS.output_json:
        report.write_json(records, FLAGS.output_json, meta)
        print(f"prado-bench: {len(records)} records written to {FLAGS.output_json}")
    if FLAGS.output_md:
        with open(FLAGS.output_md, "w", encoding="utf-8") as f:
            f.write(table + "\n")
        print(f"prado-bench: table written to {FLAGS.output_md}")
    if FLAGS.output_png:
        if report.plot(records, FLAGS.output_png):
            print(f"prado-bench: plot written to {FLAGS.output_png}")
        else:
            print("prado-bench: no plot: matplotlib is not installed (pip install matplotlib)")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
