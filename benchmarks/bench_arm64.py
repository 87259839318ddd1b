"""arm64 check: the same .tflite under qemu-aarch64 with the aarch64 LiteRT wheel, outputs compared
with the host's bit for bit (../shared/STACK.md). A slow check of its own, outside the test suite.

What it does (Debian host, root; downloads once into --work, then reuses):
1. apt: `qemu-user-static`; adds the arm64 architecture (`dpkg --add-architecture arm64`) and
   downloads arm64 Python 3.11 and the C/C++ runtime libraries (`apt-get download`), unpacked with
   `dpkg -x` into WORK/sysroot (nothing arm64 is installed on the host).
2. pip: downloads the aarch64 wheels of ai-edge-litert and numpy (`--platform
   manylinux_2_27_aarch64 --only-binary=:all:`), unpacked into WORK/site.
3. Writes an ARM-format SYSROOT/proc/cpuinfo for each emulated core: qemu's -L prefix makes the
   interpreter read it instead of the host's x86 one, which it cannot parse (it crashes). Its
   Features must match the core `qemu -cpu` emulates (LiteRT chooses kernels by them).
4. Runs `prado_tiny/bench/runner.py` on the model's encoded utterances on the host and under
   `qemu-aarch64-static -L SYSROOT`, both writing every output tensor (--outputs_out), and
   compares them byte for byte. Emulated timings are printed but say nothing about ARM speed.

Usage:
  python benchmarks/bench_arm64.py --tflite runs/demo/model.tflite [--work ~/.cache/prado_tiny/arm64]
      [--cores cortex-a72,cortex-a76] [--dataset demo --split dev --examples 50]
--cores: emulated cores (cortex-a72 = Raspberry Pi 4, cortex-a76 = Pi 5, neoverse-n1).
Exit status 0 when every output is bit-identical on every core, 1 otherwise.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

QEMU = "qemu-aarch64-static"
# arm64 Debian packages the interpreter needs: Python 3.11 and what its extension modules and
# LiteRT's shared objects link against.
DEB_PACKAGES = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libexpat1", "libffi8", "libssl3",
                "libbz2-1.0", "liblzma5", "libuuid1", "libsqlite3-0", "libncursesw6", "libtinfo6",
                "libreadline8", "libdb5.3", "libgdbm6", "libcrypt1",
                "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11"]
# /proc/cpuinfo of each emulated core (qemu -cpu NAME), as the kernel prints it: LiteRT picks its
# kernels from these Features, so they must not claim more than the emulated core has (claiming
# asimddp on a Cortex-A72 ends in SIGILL).
ARMV80 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
ARMV82 = ARMV80 + " atomics fphp asimdhp asimdrdm lrcpc dcpop asimddp"
CORES = {"cortex-a72": ("0xd08", "0x0", ARMV80),   # Raspberry Pi 4
         "cortex-a76": ("0xd0b", "0x4", ARMV82),   # Raspberry Pi 5, many phones' big cores
         "neoverse-n1": ("0xd0c", "0x3", ARMV82)}  # arm64 servers


def cpuinfo(core):
    part, variant, features = CORES[core]
    return "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
                   f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n"
                   f"CPU part\t: {part}\nCPU revision\t: 1\n\n" for i in range(4))


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def setup(work):
    """Sysroot and aarch64 wheels under `work` (skipped when already there)."""
    sysroot, site = os.path.join(work, "sysroot"), os.path.join(work, "site")
    if not subprocess.run(["which", QEMU], capture_output=True).returncode == 0:
        sh(["apt-get", "install", "-y", "-q", "qemu-user-static"])
    if not os.path.exists(os.path.join(sysroot, "usr", "bin", "python3.11")):
        debs = os.path.join(work, "debs")
        os.makedirs(debs, exist_ok=True)
        arches = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                                text=True).stdout.split()
        if "arm64" not in arches:
            sh(["dpkg", "--add-architecture", "arm64"])
            sh(["apt-get", "update", "-q"])
        sh(["apt-get", "download", "-q"] + [p + ":arm64" for p in DEB_PACKAGES], cwd=debs)
        for deb in glob.glob(os.path.join(debs, "*.deb")):
            sh(["dpkg", "-x", deb, sysroot])
    os.makedirs(os.path.join(sysroot, "proc"), exist_ok=True)
    if not os.path.isdir(os.path.join(site, "ai_edge_litert")):
        wheels = os.path.join(work, "wheels")
        sh([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps",
            "--platform", "manylinux_2_27_aarch64", "--python-version", "3.11", "-d", wheels,
            "ai-edge-litert==2.3.0", f"numpy=={np.__version__}"])
        for whl in glob.glob(os.path.join(wheels, "*.whl")):
            with zipfile.ZipFile(whl) as z:
                z.extractall(site)
    return sysroot, site


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tflite", required=True)
    ap.add_argument("--work", default=os.path.join(os.path.expanduser("~"), ".cache", "prado_tiny", "arm64"))
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--data_dir")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--examples", type=int, default=50)
    ap.add_argument("--cores", type=lambda v: v.split(","), default=["cortex-a72", "cortex-a76"])
    args = ap.parse_args()
    unknown = [c for c in args.cores if c not in CORES]
    if unknown:
        ap.error(f"--cores: unknown {unknown}; choose from {sorted(CORES)}")

    from prado_tiny.bench.local import RUNNER, dataset_tokens, prepare_inputs
    from prado_tiny.bench.machine import describe_machine

    sysroot, site = setup(args.work)
    tokens = dataset_tokens(args.dataset, args.data_dir, args.split, None, args.examples)
    with tempfile.TemporaryDirectory(prefix="prado_arm64_") as tmp:
        npz, inputs = prepare_inputs(args.tflite, tokens, tmp, f"{args.dataset} {args.split}")
        common = [RUNNER, "--model", os.path.abspath(args.tflite), "--runs", "20", "--warmup", "2"]
        if npz:
            common += ["--inputs", npz]
        host_out, arm_out = os.path.join(tmp, "host.npz"), os.path.join(tmp, "arm.npz")
        host = subprocess.run([sys.executable] + common + ["--outputs_out", host_out],
                              capture_output=True, text=True, check=True)
        hr = json.loads(host.stdout.splitlines()[-1])
        h = np.load(host_out)
        print(f"host: {describe_machine()}; median invoke {np.median(hr['samples_us']):,.0f} us")
        print(f"{args.tflite}: {inputs}; {len(h.files)} outputs x {h[h.files[0]].shape[0]} inputs")
        env = dict(os.environ, PYTHONPATH=site, PYTHONHOME=os.path.join(sysroot, "usr"),
                   PYTHONNOUSERSITE="1")
        all_same = True
        for core in args.cores:
            with open(os.path.join(sysroot, "proc", "cpuinfo"), "w", encoding="ascii") as f:
                f.write(cpuinfo(core))
            arm = subprocess.run([QEMU, "-cpu", core, "-L", sysroot,
                                  os.path.join(sysroot, "usr", "bin", "python3.11")]
                                 + common + ["--outputs_out", arm_out],
                                 capture_output=True, text=True, env=env)
            if arm.returncode != 0:
                print(f"  {core}: the aarch64 runner failed under qemu (exit {arm.returncode}): "
                      f"{arm.stderr.strip()[-1500:]}")
                all_same = False
                continue
            a = np.load(arm_out)
            ar = json.loads(arm.stdout.splitlines()[-1])
            same = sorted(h.files) == sorted(a.files) and all(
                h[k].dtype == a[k].dtype and h[k].shape == a[k].shape
                and h[k].tobytes() == a[k].tobytes() for k in h.files)
            all_same &= same
            print(f"  {core} ({ar['runtime']}, Python {ar['python']}): "
                  + ("bit-identical to the host" if same else "OUTPUTS DIFFER")
                  + f"; emulated median invoke {np.median(ar['samples_us']):,.0f} us (not ARM speed)")
            for k in ([] if same else h.files):
                if k in a.files and h[k].shape == a[k].shape:
                    diff = np.abs(h[k].astype(np.int64) - a[k].astype(np.int64))
                    print(f"    {k}: {int((diff > 0).sum())} of {diff.size} values differ, "
                          f"max {int(diff.max())}")
    sys.exit(0 if all_same else 1)


if __name__ == "__main__":
    main()
