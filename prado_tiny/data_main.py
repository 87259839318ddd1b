"""prado-data: reads one split of a dataset and reports what is in it and what is wrong with it.

Usage: prado-data --dataset=NAME --data_dir=DIR --split=SPLIT [--languages=en,de]
                  [--output_json=FILE] [--skip_bad_rows] [--max_listed=N] [--flagfile=FILE]

It prints rows read (per language and in total), rows whose slots could not be placed on the tokens
(kept, with the reason and file:line), rows skipped as malformed (only with --skip_bad_rows),
intent and slot inventories with counts, and token-length percentiles. --output_json writes the
same as JSON. Without --skip_bad_rows the first malformed row stops the run with exit code 1 and
one line `file:line: problem`; a wrong dataset name, folder, split or language exits with code 2.

The examples are consumed as a stream: only counters are kept, never the examples themselves.
"""
from __future__ import annotations

import collections
import json
import math
import os
import sys
from typing import Iterable, Optional, TextIO

from absl import app, flags

from prado_tiny import common_flags
from prado_tiny.data import registry
from prado_tiny.data.example import DataError, Example, ReadReport

common_flags.define_data_flags()
flags.adopt_module_key_flags(common_flags)  # so --help lists the shared flags too
flags.DEFINE_string("output_json", None,
                    "Also write the report as JSON to this file (keys: rows, rows_per_language, unaligned, "
                    "unaligned_per_language, skipped, intents, slots, token_length, ...).")
flags.DEFINE_integer("max_listed", 20,
                     "How many unaligned and skipped rows to list by file:line on the console (each); "
                     "-1 lists all. The JSON always lists all.")
FLAGS = flags.FLAGS

PERCENTILES = (50, 90, 95, 99)


def _percentile(histogram: dict, total: int, p: float) -> int:
    """Nearest-rank percentile of a `{value: count}` histogram holding `total` values."""
    rank = max(1, math.ceil(p / 100.0 * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def _span_types(tags: list) -> Iterable[str]:
    """The slot type of each span in a BIO sequence (an I- after a different tag starts a span too)."""
    previous = "O"
    for tag in tags:
        if tag.startswith("B-") or (tag.startswith("I-") and previous[2:] != tag[2:]):
            yield tag[2:]
        previous = tag


def summarize(examples: Iterable[Example], report: Optional[ReadReport] = None) -> dict:
    """Consumes `examples` one at a time and returns the report as a JSON-ready dict.

    Rows, unaligned rows, intents, slots and lengths come from the examples; rows skipped as
    malformed and the files read come from `report` (the one the reader filled).
    """
    per_language: collections.Counter = collections.Counter()
    unaligned_per_language: collections.Counter = collections.Counter()
    intents: collections.Counter = collections.Counter()
    slots: collections.Counter = collections.Counter()
    lengths: collections.Counter = collections.Counter()  # token count -> rows; constant memory
    unaligned = []
    multi_intent = 0
    for ex in examples:
        per_language[ex.language] += 1
        intents[ex.intent] += 1
        multi_intent += "#" in ex.intent
        slots.update(_span_types(ex.slots))
        lengths[len(ex.tokens)] += 1
        if ex.unaligned:
            unaligned_per_language[ex.language] += 1
            unaligned.append({"source": ex.source, "reason": ex.unaligned})
    total = sum(per_language.values())
    skipped = list(report.skipped) if report is not None else []
    token_length = {f"p{p}": _percentile(lengths, total, p) for p in PERCENTILES} if total else {}
    if total:
        token_length["max"] = max(lengths)
        token_length["mean"] = round(sum(k * v for k, v in lengths.items()) / total, 2)
    return {
        "rows": total,
        "rows_per_language": dict(sorted(per_language.items())),
        "unaligned": unaligned,
        "unaligned_count": len(unaligned),
        "unaligned_per_language": {lang: unaligned_per_language[lang] for lang in sorted(per_language)},
        "unaligned_reasons": _reasons(unaligned),
        "skipped": skipped,
        "skipped_count": len(skipped),
        "skipped_reasons": _reasons(skipped),
        "intents": dict(intents.most_common()),
        "multi_intent_rows": multi_intent,
        "slots": dict(slots.most_common()),
        "token_length": token_length,
        "files": list(report.files) if report is not None else [],
    }


def _reasons(rows: list) -> dict:
    """Counts rows by the part of their reason before the first colon (`tag count mismatch`)."""
    return dict(collections.Counter(r["reason"].split(":")[0] for r in rows).most_common())


def _listing(rows: list, max_listed: int) -> list:
    shown = rows if max_listed < 0 else rows[:max_listed]
    lines = [f"    {r['source']}: {r['reason']}" for r in shown]
    if len(shown) < len(rows):
        lines.append(f"    ... and {len(rows) - len(shown)} more (--max_listed=-1 or --output_json lists all)")
    return lines


def format_summary(summary: dict, max_listed: int = 20) -> str:
    """The console form of a `summarize` result."""
    out = [f"rows read: {summary['rows']}"]
    width = max([len(k) for k in summary["rows_per_language"]] + [2])
    for lang, n in summary["rows_per_language"].items():
        bad = summary["unaligned_per_language"].get(lang, 0)
        out.append(f"  {lang:<{width}}  {n:>7}" + (f"  ({bad} unaligned)" if bad else ""))
    out.append(f"rows that could not be aligned (kept, their slots tagged O): {summary['unaligned_count']}")
    for reason, n in summary["unaligned_reasons"].items():
        out.append(f"  {reason}: {n}")
    out += _listing(summary["unaligned"], max_listed)
    out.append(f"rows skipped as malformed: {summary['skipped_count']}")
    for reason, n in summary["skipped_reasons"].items():
        out.append(f"  {reason}: {n}")
    out += _listing(summary["skipped"], max_listed)
    out.append(f"intents: {len(summary['intents'])} distinct"
               + (f" ({summary['multi_intent_rows']} rows with a multi-intent)" if summary["multi_intent_rows"] else ""))
    out += _inventory(summary["intents"])
    out.append(f"slots: {len(summary['slots'])} types (span counts)")
    out += _inventory(summary["slots"])
    tl = summary["token_length"]
    if tl:
        out.append("tokens per row: " + " ".join(f"{k}={v}" for k, v in tl.items()))
    return "\n".join(out)


def _inventory(counts: dict) -> list:
    width = max([len(k) for k in counts] + [1])
    return [f"  {name:<{width}}  {n:>7}" for name, n in counts.items()]


def print_report(examples: Iterable[Example], report: Optional[ReadReport] = None,
                 out: TextIO = sys.stdout, max_listed: int = 20) -> dict:
    """Streams `examples` into a summary, prints it to `out` and returns it."""
    summary = summarize(examples, report)
    print(format_summary(summary, max_listed), file=out)
    return summary


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    report = ReadReport()
    try:
        examples = registry.read_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.split,
                                         languages=FLAGS.languages, skip_bad_rows=FLAGS.skip_bad_rows,
                                         report=report)
        where = f" data_dir={FLAGS.data_dir}" if FLAGS.data_dir else ""
        print(f"prado-data: dataset={FLAGS.dataset} split={FLAGS.split}{where}")
        summary = print_report(examples, report, max_listed=FLAGS.max_listed)
        if FLAGS.output_json:
            _write_json(FLAGS.output_json, {
                "dataset": FLAGS.dataset, "split": FLAGS.split, "data_dir": FLAGS.data_dir,
                "languages": FLAGS.languages or None, **summary})
            print(f"report written to {FLAGS.output_json}")
    except BrokenPipeError:
        # `prado-data ... | head`: the reader of our output has gone; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except DataError as err:
        # One line, no traceback: the message already says file:line and what is wrong.
        print(str(err), file=sys.stderr)
        return 1
    except (registry.DatasetError, OSError, ValueError) as err:
        print(f"prado-data: error: {err}", file=sys.stderr)
        return 2
    return 0


def _write_json(path: str, summary: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, ensure_ascii=False, indent=1)
        f.write("\n")


def run():
    """The `prado-data` console script."""
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
