"""prado_tiny.bench.adb against a fake `adb` put first on PATH (no device exists here).

The fake answers `devices -l`, `push` (copies into a folder standing for the phone), and `shell`
(getprop, cat of the CPU list, mkdir, chmod, and `taskset MASK .../benchmark_model ...`, which
prints benchmark_model's real output format). It logs every call so the tests can check what
prado-bench asked the device to do.
"""
import json
import os
import stat
import sys

import pytest

from prado_tiny.bench import adb as adbmod
from prado_tiny.bench.adb import AdbError, AdbTarget

# benchmark_model's output (recent builds: INFO prefixes, p5/median/p95 on the count lines).
BENCH_OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/prado_bench/m.tflite]
INFO: #threads used for CPU inference: [1]
INFO: Loaded model /data/local/tmp/prado_bench/m.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.021
INFO: Initialized session in 3.567ms.
INFO: Running benchmark for at least 20 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=20 first=1234 curr=371 min=350 max=1234 avg=412.5 std=45 p5=350 median=380 p95=1234

INFO: Running benchmark for at least 200 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=200 first=380 curr=376 min=351 max=900 avg=3.901e+02 std=20 p5=355 median=388 p95=420

INFO: Inference timings in us: Init: 3567, First inference: 1234, Warmup (avg): 412.5, Inference (avg): 390.1
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=2.5 overall=3.25
INFO: Overall peak memory footprint (MB) via periodic monitoring: 5.5
"""

FAKE_ADB = r'''#!{python}
import json, os, shutil, sys
cfg = json.load(open(os.environ["FAKE_ADB_CONFIG"]))
args = sys.argv[1:]
with open(cfg["log"], "a") as f:
    f.write(json.dumps(args) + "\n")
if args[:1] == ["-s"]:
    args = args[2:]
if args == ["devices", "-l"]:
    print("List of devices attached")
    for line in cfg["devices"]:
        print(line)
    sys.exit(0)
if args[0] == "push":
    shutil.copy(args[1], os.path.join(cfg["phone"], os.path.basename(args[2])))
    print(f"{{args[1]}}: 1 file pushed.")
    sys.exit(0)
if args[0] == "shell":
    cmd = args[1]
    answers = {{"getprop ro.product.cpu.abi": cfg["abi"],
               "getprop ro.product.cpu.abilist": cfg["abilist"],
               "getprop ro.product.model": "Pixel 7",
               "cat /sys/devices/system/cpu/possible": "0-7"}}
    if cmd in answers:
        print(answers[cmd])
    elif cmd.startswith("taskset "):
        sys.stdout.write(open(cfg["bench_output"]).read())
        sys.exit(cfg.get("bench_exit", 0))
    elif not (cmd.startswith("mkdir") or cmd.startswith("chmod")):
        print(f"fake adb: unknown shell command {{cmd}}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
print(f"fake adb: unknown command {{args}}", file=sys.stderr)
sys.exit(1)
'''


def elf(machine: int) -> bytes:
    """A 64-byte little-endian ELF header for `machine` (enough for e_machine to be read)."""
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4], head[5] = 2, 1  # 64-bit, little endian
    head[18:20] = machine.to_bytes(2, "little")
    return bytes(head)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """-> a function that writes the fake's config: devices lines, ABI, benchmark output."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    adb = bindir / "adb"
    adb.write_text(FAKE_ADB.format(python=sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    phone = tmp_path / "phone"
    phone.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "adb.json"
    monkeypatch.setenv("FAKE_ADB_CONFIG", str(config))
    (tmp_path / "bench.txt").write_text(BENCH_OUTPUT)
    model = tmp_path / "m.tflite"
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(elf(183) + b"\0" * 100)

    def configure(devices=("R5CT1234\tdevice usb:1-1 product:panther model:Pixel_7 transport_id:3",),
                  abi="arm64-v8a", abilist="arm64-v8a,armeabi-v7a,armeabi", bench_exit=0):
        config.write_text(json.dumps({
            "log": str(tmp_path / "log.jsonl"), "devices": list(devices), "abi": abi,
            "abilist": abilist, "phone": str(phone), "bench_output": str(tmp_path / "bench.txt"),
            "bench_exit": bench_exit}))
        return {"model": str(model), "binary": str(binary), "phone": phone,
                "log": tmp_path / "log.jsonl"}

    return configure


@pytest.fixture(scope="module")
def tiny_tflite(tiny_export):
    """The tiny exported demo model of conftest's `tiny_export` (shared with the export tests)."""
    return tiny_export[1]


def test_parse_benchmark_output_reads_every_figure():
    f = adbmod.parse_benchmark_output(BENCH_OUTPUT)
    assert f["init_us"] == 3567 and f["first_us"] == 1234 and f["warmup_avg_us"] == 412.5
    assert f["mean_us"] == 390.1
    # The timed runs' count line (the last one), not the warm-up's.
    assert f["count"] == 200 and f["std_us"] == 20 and f["median_us"] == 388 and f["min_us"] == 351
    assert f["avg_us"] == pytest.approx(390.1)  # e-notation parsed
    assert f["memory_overall_mb"] == 3.25 and f["peak_memory_mb"] == 5.5


def test_parse_benchmark_output_old_format_without_percentiles():
    text = ("count=50 first=249042 curr=250889 min=247067 max=254474 avg=249684 std=1442\n"
            "Inference timings in us: Init: 16242, First inference: 360262, Warmup (avg): 304586, "
            "Inference (avg): 249684\nPeak memory footprint (MB): init=4.92969 overall=138.809\n")
    f = adbmod.parse_benchmark_output(text)
    assert f["mean_us"] == 249684 and "median_us" not in f
    assert f["memory_overall_mb"] == pytest.approx(138.809)


def test_parse_benchmark_output_failure_shows_tail():
    with pytest.raises(AdbError, match="(?s)no .Inference timings. line.*Failed to allocate tensors"):
        adbmod.parse_benchmark_output("INFO: Loaded model x\nERROR: Failed to allocate tensors!\n")


def test_devices_parsing_and_choice():
    devs = adbmod.parse_devices("* daemon started successfully\nList of devices attached\n"
                                "A1\tdevice usb:1 model:Pixel_7\nB2 unauthorized usb:2\n\n")
    assert [(d.serial, d.state) for d in devs] == [("A1", "device"), ("B2", "unauthorized")]
    assert devs[0].info["model"] == "Pixel_7"
    assert adbmod.pick_device(devs, "A1").serial == "A1"
    with pytest.raises(AdbError, match="2 devices attached.*--serial"):
        adbmod.pick_device(devs, None)
    with pytest.raises(AdbError, match="--serial=C3: no such device; attached: A1"):
        adbmod.pick_device(devs, "C3")
    with pytest.raises(AdbError, match="B2 is unauthorized: .*Allow USB debugging"):
        adbmod.pick_device(devs, "B2")
    with pytest.raises(AdbError, match="B2 is offline: reconnect"):
        adbmod.pick_device([adbmod.Device("B2", "offline", {})], None)


def test_elf_abi_and_masks(tmp_path):
    for machine, abi in ((183, "arm64-v8a"), (40, "armeabi-v7a"), (62, "x86_64")):
        p = tmp_path / f"b{machine}"
        p.write_bytes(elf(machine))
        assert adbmod.elf_abi(str(p)) == abi
    (tmp_path / "script").write_text("#!/bin/sh\n" + " " * 30)
    with pytest.raises(AdbError, match="not an ELF executable"):
        adbmod.elf_abi(str(tmp_path / "script"))
    assert adbmod.cpu_mask([6, 7]) == "c0" and adbmod.cpu_mask([0]) == "1"
    assert adbmod.parse_cpu_range("0-3,6\n") == [0, 1, 2, 3, 6]


def test_adb_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no adb anywhere
    with pytest.raises(AdbError, match="adb is not installed or not on PATH.*apt-get install adb"):
        AdbTarget()


def test_no_device(fake):
    fake(devices=())
    with pytest.raises(AdbError, match="no Android device.*USB debugging"):
        AdbTarget()


def test_unauthorized_device(fake):
    fake(devices=("R5CT1234\tunauthorized usb:1-1 transport_id:3",))
    with pytest.raises(AdbError, match="unauthorized: unlock it"):
        AdbTarget()


def test_several_devices_need_serial(fake):
    fake(devices=("AAA\tdevice usb:1", "BBB\tdevice usb:2"))
    with pytest.raises(AdbError, match="2 devices attached \\(AAA, BBB\\): pick one with --serial"):
        AdbTarget()
    assert AdbTarget(serial="BBB").serial == "BBB"


def test_missing_binary(fake, tiny_tflite):
    paths = fake()
    with pytest.raises(AdbError, match="benchmark_model binary not found.*--benchmark_binary"):
        AdbTarget().bench(tiny_tflite, paths["binary"] + ".missing")


def test_wrong_abi_binary(fake, tiny_tflite, tmp_path):
    fake()
    x86 = tmp_path / "benchmark_model_x86_64"
    x86.write_bytes(elf(62))
    with pytest.raises(AdbError, match="built for x86_64, device R5CT1234 runs arm64-v8a"):
        AdbTarget().bench(tiny_tflite, str(x86))
    # A 32-bit ARM build runs on an arm64 phone that lists armeabi-v7a: accepted.
    arm32 = tmp_path / "benchmark_model_arm32"
    arm32.write_bytes(elf(40))
    assert AdbTarget().check_binary(str(arm32)) == "armeabi-v7a"


def test_bench_pushes_runs_pinned_and_parses(fake, tiny_tflite):
    paths = fake()
    rec = AdbTarget().bench(tiny_tflite, paths["binary"], num_threads=2, warmup=20, runs=200)
    calls = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    pushes = [c for c in calls if "push" in c]
    assert [c[:3] for c in pushes] == [["-s", "R5CT1234", "push"]] * 2
    assert sorted(os.listdir(paths["phone"])) == sorted(["benchmark_model",
                                                         os.path.basename(tiny_tflite)])
    run = [c[3] for c in calls if c[2:3] == ["shell"] and c[3].startswith("taskset")]
    assert len(run) == 1
    # The two highest-numbered of CPUs 0-7 -> mask c0.
    assert run[0].startswith("taskset c0 /data/local/tmp/prado_bench/benchmark_model --graph=")
    assert "--num_threads=2" in run[0] and "--num_runs=200" in run[0] and "--min_secs=0 " in run[0]
    assert rec.target == "adb" and rec.cpus == [6, 7] and rec.num_threads == 2
    assert rec.init_us == 3567 and rec.first_us == 1234 and rec.mean_us == 390.1
    assert rec.std_us == 20 and rec.p50_us == 388 and rec.runs == 200
    assert rec.peak_memory_bytes == int(5.5 * 2 ** 20)
    assert rec.size_bytes == os.path.getsize(tiny_tflite) and rec.macs > 0
    assert rec.device.startswith("Pixel 7 (R5CT1234, arm64-v8a)")


def test_failing_benchmark_run_is_reported(fake, tiny_tflite):
    paths = fake(bench_exit=1)
    with pytest.raises(AdbError, match="failed \\(exit 1\\)"):
        AdbTarget().bench(tiny_tflite, paths["binary"])


def test_prado_bench_cli_on_the_fake_phone(fake, tiny_tflite, tmp_path):
    import subprocess
    paths = fake()
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "prado_tiny.bench_main", f"--models={tiny_tflite}",
                        "--target=adb", f"--benchmark_binary={paths['binary']}", "--runs=200", "--min_seconds=3",
                        f"--output_json={out}"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    (rec,) = json.loads(out.read_text())["records"]
    assert rec["target"] == "adb" and rec["mean_us"] == 390.1 and rec["cpus"] == [7]
    assert "| adb |" in r.stdout and "--min_secs=3 " in paths["log"].read_text()
    # An unauthorized phone stops the run with the fix in the message.
    fake(devices=("R5CT1234\tunauthorized usb:1-1",))
    r = subprocess.run([sys.executable, "-m", "prado_tiny.bench_main", f"--models={tiny_tflite}",
                        "--target=adb", f"--benchmark_binary={paths['binary']}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "unauthorized: unlock it" in r.stderr


def test_bench_feeds_a_real_utterance_as_value_file(fake, tiny_tflite):
    import numpy as np

    from prado_tiny.bench.local import encode_utterances
    from prado_tiny.export.inspect import inspect_model
    paths = fake()
    tokens = [["wake", "me", "up", "at", "7"], ["unused"]]
    rec = AdbTarget().bench(tiny_tflite, paths["binary"], tokens, source="demo dev", runs=200)
    assert rec.inputs == "demo dev: 1 utterance (benchmark_model repeats one input)"
    pushed = paths["phone"] / (os.path.basename(tiny_tflite) + ".input0.bin")
    want = encode_utterances(tiny_tflite, tokens[:1])[0]
    np.testing.assert_array_equal(np.fromfile(pushed, "<i4").reshape(want.shape), want)
    calls = [json.loads(line) for line in paths["log"].read_text().splitlines()]
    (run,) = [c[3] for c in calls if c[2:3] == ["shell"] and c[3].startswith("taskset")]
    name = inspect_model(tiny_tflite).inputs[0].name
    assert f"--input_layer={name}" in run and "--input_layer_shape=1,16," in run
    # benchmark_model's syntax: a ':' inside the tensor name is doubled.
    assert f"--input_layer_value_files={name.replace(':', '::')}:/data/local/tmp/prado_bench/" in run
