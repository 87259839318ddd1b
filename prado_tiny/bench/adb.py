"""The Android target: TFLite's own `benchmark_model` run on a phone over adb.

Steps: find `adb`, pick the device (`--serial`, or the only one attached), check that the
`benchmark_model` binary exists and is built for an ABI the phone runs (ELF `e_machine` against
`ro.product.cpu.abilist`), push it and the model to /data/local/tmp/prado_bench, run it pinned
with `taskset` to the highest-numbered cores (the big cores on most phones) and parse its output
into a `BenchRecord`. Every failure raises `AdbError` saying what is wrong and how to fix it.

A seq2seq encoder (pQRNN-MAtt) goes with its decoder: benchmark_model times the encoder's invoke
and then one decoder step (value files of its first-step inputs, computed here from the first
utterance), each file on its own; the whole parse needs prado_tiny's search, which
benchmark_model cannot run, and the record's note says so.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
from typing import Dict, List, Optional, Sequence

from prado_tiny.bench.model_stats import model_stats
from prado_tiny.bench.report import BenchError, BenchRecord, model_name

REMOTE_DIR = "/data/local/tmp/prado_bench"

#: ELF e_machine -> Android ABI name.
ELF_MACHINE_ABI = {183: "arm64-v8a", 40: "armeabi-v7a", 62: "x86_64", 3: "x86", 243: "riscv64"}


class AdbError(BenchError):
    """adb, the device or the benchmark binary is not usable; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class Device:
    serial: str
    state: str  # device, unauthorized, offline, ...
    info: Dict[str, str]


def find_adb(adb: Optional[str] = None) -> str:
    """The adb executable: `adb` if given, else the first on PATH.

    Raises:
      AdbError: not found.
    """
    found = shutil.which(adb or "adb")
    if not found:
        raise AdbError(f"{adb or 'adb'}: adb is not installed or not on PATH; install it "
                       f"(Debian/Ubuntu: apt-get install adb; or Android SDK platform-tools) "
                       f"or pass its path with --adb")
    return found


def parse_devices(text: str) -> List[Device]:
    """Parses `adb devices -l` (header line, then `SERIAL STATE key:value...` per device)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue  # header, or the "* daemon started" lines of a fresh server
        parts = line.split()
        if len(parts) < 2:
            continue
        info = dict(p.split(":", 1) for p in parts[2:] if ":" in p)
        out.append(Device(parts[0], parts[1], info))
    return out


def pick_device(devices: Sequence[Device], serial: Optional[str]) -> Device:
    """The device to use.

    Raises:
      AdbError: none attached, `serial` not attached, unauthorized or offline, or several
        attached and no `serial`.
    """
    if not devices:
        raise AdbError("no Android device: `adb devices` lists none; connect a phone with USB "
                       "debugging enabled (Settings > Developer options) or `adb connect HOST:PORT`")
    if serial:
        chosen = [d for d in devices if d.serial == serial]
        if not chosen:
            raise AdbError(f"--serial={serial}: no such device; attached: "
                           f"{', '.join(d.serial + ' (' + d.state + ')' for d in devices)}")
        device = chosen[0]
    elif len(devices) > 1:
        raise AdbError(f"{len(devices)} devices attached ({', '.join(d.serial for d in devices)}): "
                       f"pick one with --serial")
    else:
        device = devices[0]
    if device.state == "unauthorized":
        raise AdbError(f"device {device.serial} is unauthorized: unlock it and accept the 'Allow "
                       f"USB debugging' prompt (revoke authorizations and reconnect if none shows)")
    if device.state != "device":
        raise AdbError(f"device {device.serial} is {device.state}: reconnect it (or run "
                       f"`adb kill-server`) until `adb devices` shows it as 'device'")
    return device


def elf_abi(path: str) -> str:
    """The Android ABI an executable is built for, from its ELF header.

    Raises:
      AdbError: the file is missing or is not an ELF executable.
    """
    if not os.path.isfile(path):
        raise AdbError(f"{path}: benchmark_model binary not found; build it (bazel build -c opt "
                       f"--config=android_arm64 //tensorflow/lite/tools/benchmark:benchmark_model) "
                       f"or download TFLite's prebuilt one, and pass its path to --benchmark_binary")
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise AdbError(f"{path}: not an ELF executable; --benchmark_binary must be TFLite's "
                       f"benchmark_model built for Android")
    order = "little" if head[5] == 1 else "big"  # EI_DATA
    machine = int.from_bytes(head[18:20], order)  # e_machine
    return ELF_MACHINE_ABI.get(machine, f"unknown (ELF e_machine {machine})")


def parse_benchmark_output(text: str) -> Dict[str, float]:
    """Figures from benchmark_model's output (lines may carry an `INFO: ` or logcat prefix).

    Returns keys: init_us, first_us, warmup_avg_us, mean_us (from the summary line), and when
    printed: count, min_us, max_us, std_us, p5_us, median_us, p95_us (the last `count=` line, the
    timed runs), memory_init_mb, memory_overall_mb, peak_memory_mb.

    Raises:
      AdbError: no `Inference timings in us:` line (the run failed; the output's tail is shown).
    """
    num = r"([0-9.]+(?:e[+-]?[0-9]+)?)"
    out: Dict[str, float] = {}
    m = re.search(rf"Inference timings in us: Init: {num}, First inference: {num}, "
                  rf"Warmup \(avg\): {num}, Inference \(avg\): {num}", text)
    if not m:
        tail = "\n".join(text.strip().splitlines()[-15:])
        raise AdbError(f"benchmark_model printed no 'Inference timings' line: it failed on the "
                       f"device (check the model and flags):\n{tail}")
    out["init_us"], out["first_us"], out["warmup_avg_us"], out["mean_us"] = map(float, m.groups())
    counts = [ln for ln in text.splitlines() if re.search(r"\bcount=\d+ first=", ln)]
    if counts:
        fields = dict(re.findall(rf"\b(\w+)={num}", counts[-1]))
        names = {"min": "min_us", "max": "max_us", "std": "std_us", "p5": "p5_us",
                 "median": "median_us", "p95": "p95_us", "count": "count", "avg": "avg_us"}
        for k, v in fields.items():
            if k in names:
                out[names[k]] = float(v)
    m = re.search(rf"Memory footprint delta from the start of the tool \(MB\): init={num} "
                  rf"overall={num}", text) or re.search(
        rf"Peak memory footprint \(MB\): init={num} overall={num}", text)
    if m:
        out["memory_init_mb"], out["memory_overall_mb"] = map(float, m.groups())
    m = re.search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {num}", text)
    if m:
        out["peak_memory_mb"] = float(m.group(1))
    return out


def cpu_mask(cpus: Sequence[int]) -> str:
    """`taskset` hex mask of CPUs: [6, 7] -> `c0`."""
    return format(sum(1 << c for c in cpus), "x")


def parse_cpu_range(text: str) -> List[int]:
    """`0-3,6` (sysfs cpu lists) -> [0, 1, 2, 3, 6]."""
    cpus = []
    for part in text.strip().split(","):
        if "-" in part:
            a, b = part.split("-")
            cpus += range(int(a), int(b) + 1)
        elif part.strip():
            cpus.append(int(part))
    return cpus


class AdbTarget:
    """One Android device reached over adb.

    Args:
      serial: the device (`--serial`); None when exactly one is attached.
      adb: the adb executable (None: `adb` on PATH).
      timeout: seconds any one adb command may take.
    """

    def __init__(self, serial: Optional[str] = None, adb: Optional[str] = None, timeout: float = 600):
        self.adb = find_adb(adb)
        self.timeout = timeout
        out = self._run(["devices", "-l"], device=False)
        self.device = pick_device(parse_devices(out), serial)
        self.serial = self.device.serial

    def _run(self, args: List[str], device: bool = True) -> str:
        cmd = [self.adb] + (["-s", self.serial] if device else []) + args
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise AdbError(f"`{' '.join(cmd)}` took longer than {self.timeout:.0f} s; check the "
                           f"device's connection (adb devices)") from None
        text = (r.stdout + r.stderr).replace("\r\n", "\n")
        if r.returncode != 0:
            raise AdbError(f"`{' '.join(cmd)}` failed (exit {r.returncode}): {text.strip()[-1500:]}")
        return text

    def shell(self, command: str) -> str:
        return self._run(["shell", command])

    def abis(self) -> List[str]:
        """ABIs the device runs, its primary one first."""
        primary = self.shell("getprop ro.product.cpu.abi").strip()
        more = self.shell("getprop ro.product.cpu.abilist").strip()
        return [primary] + [a for a in more.split(",") if a and a != primary]

    def check_binary(self, binary: str) -> str:
        """Raises AdbError unless `binary` exists and runs on this device; returns its ABI."""
        abi = elf_abi(binary)
        abis = self.abis()
        if abi not in abis:
            raise AdbError(f"{binary} is built for {abi}, device {self.serial} runs "
                           f"{', '.join(abis)}: pass a benchmark_model built for {abis[0]} "
                           f"(bazel --config=android_arm64 for arm64-v8a)")
        return abi

    def _push_utterance(self, path: str, token_lists) -> str:
        """Pushes the first utterance as input 0's raw value file -> benchmark_model's flags
        (empty when there is no utterance or no prado_tiny metadata)."""
        from prado_tiny.bench.local import encode_utterances
        from prado_tiny.export.inspect import inspect_model

        x = encode_utterances(path, token_lists[:1]) if token_lists else None
        inputs = inspect_model(path).inputs
        if x is None or len(inputs) != 1:
            return ""
        return self._push_values(path, [(inputs[0].name, inputs[0].shape, x[0].astype("<i4"))])

    def _push_values(self, path: str, values) -> str:
        """Pushes one raw value file per model input -> benchmark_model's flags.

        Args:
          path: the model the values are for (names the remote files).
          values: `[(tensor name, shape with the batch dimension, array)]`, every input.
        """
        import tempfile

        layers, shapes, files = [], [], []
        with tempfile.TemporaryDirectory(prefix="prado_bench_adb_") as tmp:
            for i, (name, shape, x) in enumerate(values):
                remote = f"{REMOTE_DIR}/{os.path.basename(path)}.input{i}.bin"
                local = os.path.join(tmp, f"input{i}.bin")
                x.astype(x.dtype.newbyteorder("<")).tofile(local)  # raw bytes, little endian
                self._run(["push", local, remote])
                layers.append(name)
                shapes.append(",".join(map(str, shape)))
                # ':' inside a tensor name is written '::' in --input_layer_value_files.
                files.append(name.replace(":", "::") + ":" + remote)
        return (f"--input_layer={shlex.quote(','.join(layers))} "
                f"--input_layer_shape={':'.join(shapes)} "
                f"--input_layer_value_files={shlex.quote(','.join(files))}")

    def cpus(self) -> List[int]:
        return parse_cpu_range(self.shell("cat /sys/devices/system/cpu/possible"))

    def bench(self, path: str, binary: str, token_lists=None, *, source: str = "",
              num_threads: int = 1, cpus: Optional[Sequence[int]] = None, warmup: int = 20,
              runs: int = 200, min_seconds: float = 0.0) -> BenchRecord:
        """Pushes the model and binary, runs benchmark_model, returns the record.

        Args:
          path: the .tflite on the host.
          binary: TFLite's benchmark_model for the device's ABI.
          token_lists: utterances; the first, encoded by the model's metadata, is the input of
            every run (benchmark_model takes one value file per input). None, or a model without
            prado_tiny metadata: benchmark_model's random inputs.
          source: what the utterances are, for the record.
          num_threads: interpreter threads.
          cpus: CPUs for `taskset` (None: the last `num_threads` of the device).
          warmup, runs: benchmark_model's --warmup_runs and --num_runs.
          min_seconds: benchmark_model's --min_secs (it times at least `runs` and this long).

        A seq2seq encoder's decoder is timed too, as a second benchmark_model run on its
        first-step inputs (`device_pair`).

        Raises:
          AdbError: see the class; BenchError if the model is missing.
        """
        from prado_tiny.bench.local import decoder_step_inputs, device_pair, seq2seq_pair

        if not os.path.isfile(path):
            raise BenchError(f"{path}: model file not found; pass existing .tflite files to --models")
        abi = self.check_binary(binary)
        pair = seq2seq_pair(path)
        cpus = list(cpus) if cpus else self.cpus()[-max(num_threads, 1):]
        remote_bin = f"{REMOTE_DIR}/benchmark_model"
        self.shell(f"mkdir -p {REMOTE_DIR}")
        self._run(["push", path, f"{REMOTE_DIR}/{os.path.basename(path)}"])
        self._run(["push", binary, remote_bin])
        self.shell(f"chmod 755 {remote_bin}")
        inputs = "random (benchmark_model)"
        value_flags = self._push_utterance(path, token_lists)
        if value_flags:
            inputs = f"{source}: 1 utterance (benchmark_model repeats one input)"
        timing = dict(abi=abi, num_threads=num_threads, cpus=cpus, warmup=warmup, runs=runs,
                      min_seconds=min_seconds)
        rec = self._bench_file(path, value_flags, inputs, **timing)
        if pair is not None:
            self._run(["push", pair.decoder, f"{REMOTE_DIR}/{os.path.basename(pair.decoder)}"])
            rows = decoder_step_inputs(path, pair.decoder, token_lists[:1] if token_lists else None)
            dec_flags = self._push_values(
                pair.decoder, [(d["name"], [int(n) for n in d["shape"]], x[0]) for d, x in rows])
            what = f"{source}: 1 utterance" if token_lists else "a placeholder word"
            dec = self._bench_file(pair.decoder, dec_flags, f"first decoder step of {what}",
                                   **timing)
            device_pair(rec, pair.decoder, dec, "benchmark_model")
        return rec

    def _bench_file(self, path: str, value_flags: str, inputs: str, *, abi: str, num_threads: int,
                    cpus: Sequence[int], warmup: int, runs: int, min_seconds: float) -> BenchRecord:
        """Runs the pushed benchmark_model on the pushed `path` -> its record.

        Args:
          path: the .tflite on the host (already pushed to REMOTE_DIR).
          value_flags: `_push_values`' flags ("" for benchmark_model's random inputs).
          inputs: what the inputs are, for the record.
        """
        remote_model = f"{REMOTE_DIR}/{os.path.basename(path)}"
        cmd = (f"taskset {cpu_mask(cpus)} {REMOTE_DIR}/benchmark_model "
               f"--graph={shlex.quote(remote_model)} "
               f"--num_threads={num_threads} --warmup_runs={warmup} --num_runs={runs} "
               f"--warmup_min_secs=0 --min_secs={min_seconds:g} --report_peak_memory_footprint=true")
        if value_flags:
            cmd += " " + value_flags
        out = self.shell(cmd)
        figures = parse_benchmark_output(out)
        model = self.shell("getprop ro.product.model").strip()
        stats = model_stats(path)
        mem_mb = figures.get("peak_memory_mb", figures.get("memory_overall_mb"))
        rec = BenchRecord(
            name=model_name(path), model=path, target="adb",
            device=f"{model or self.device.info.get('model', '?')} ({self.serial}, {abi})",
            size_bytes=stats.size_bytes, params=stats.params, macs=stats.macs,
            num_threads=num_threads, cpus=cpus, inputs=inputs,
            runs=int(figures.get("count", runs)), warmup=warmup, init_us=figures["init_us"],
            first_us=figures["first_us"], mean_us=figures["mean_us"], std_us=figures.get("std_us"),
            min_us=figures.get("min_us"), p50_us=figures.get("median_us"),
            peak_memory_bytes=None if mem_mb is None else int(mem_mb * 2 ** 20))
        rec.extra = {"benchmark_model": figures, "command": cmd, "macs_by_op": stats.macs_by_op}
        return rec
