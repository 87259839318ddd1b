"""The ssh target (a Raspberry Pi or any Linux board): `runner.py` copied over and run there.

The board needs Python with numpy and a LiteRT interpreter (`pip install ai-edge-litert`, or
`tflite-runtime`); nothing of prado_tiny. The model, its encoded inputs (.npz) and the runner go
to `--remote_dir` with scp; the runner prints one JSON line, read into the same `BenchRecord` as
the local target's. ssh runs with BatchMode (a key, never a password prompt that would hang).

A seq2seq encoder (pQRNN-MAtt) goes with its decoder: the board times the encoder's invoke and one
decoder step (its inputs computed here from the same utterances), each file on its own; the whole
parse needs prado_tiny's search, which the board does not have, and the record's note says so.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from typing import List, Optional, Sequence

from prado_tiny.bench.local import (RUNNER, device_pair, prepare_decoder_inputs, prepare_inputs,
                                    record_from_runner, seq2seq_pair)
from prado_tiny.bench.report import BenchError, BenchRecord


class SshError(BenchError):
    """ssh/scp or the board is not usable; the message says how to fix it."""


class SshTarget:
    """A board reached with ssh and scp.

    Args:
      host: `user@host` (or a Host alias of ~/.ssh/config).
      port: sshd's port.
      key: private key file (None: ssh's defaults and agent).
      remote_python: the board's Python with numpy and a LiteRT interpreter.
      remote_dir: where the model and runner go on the board.
      options: extra `-o` options (`StrictHostKeyChecking=no`, ...).
      timeout: seconds any one ssh/scp command may take.
    """

    def __init__(self, host: str, port: int = 22, key: Optional[str] = None,
                 remote_python: str = "python3", remote_dir: str = "/tmp/prado_bench",
                 options: Sequence[str] = (), timeout: float = 600):
        if not host:
            raise SshError("--host is required for --target=ssh (user@host)")
        for tool in ("ssh", "scp"):
            if not shutil.which(tool):
                raise SshError(f"{tool} is not installed: install the OpenSSH client "
                               f"(Debian/Ubuntu: apt-get install openssh-client)")
        if key and not os.path.isfile(key):
            raise SshError(f"--ssh_key={key}: no such file; pass the private key that the board "
                           f"accepts (its public half in the board's ~/.ssh/authorized_keys)")
        self.host, self.port, self.key = host, int(port), key
        self.remote_python, self.remote_dir, self.timeout = remote_python, remote_dir, timeout
        self.common = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
        for opt in options:
            self.common += ["-o", opt]
        if key:
            self.common += ["-i", key, "-o", "IdentitiesOnly=yes"]

    def _call(self, cmd: List[str], what: str) -> subprocess.CompletedProcess:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise SshError(f"{what}: no answer from {self.host} after {self.timeout:.0f} s") from None
        if r.returncode == 255:  # ssh's own failure: connection or authentication
            raise SshError(f"{what}: cannot reach {self.host}:{self.port} ({r.stderr.strip()[-800:]}); "
                           f"check --host, --ssh_port and --ssh_key: `ssh -p {self.port} "
                           f"{self.host} true` must work without a password")
        return r

    def ssh(self, command: str, what: str) -> subprocess.CompletedProcess:
        return self._call(["ssh", "-p", str(self.port)] + self.common + [self.host, command], what)

    def copy(self, files: Sequence[str]) -> None:
        r = self.ssh(f"mkdir -p {shlex.quote(self.remote_dir)}", "creating the remote folder")
        if r.returncode != 0:
            raise SshError(f"cannot create {self.remote_dir} on {self.host}: {r.stderr.strip()}; "
                           f"choose a writable --remote_dir")
        r = self._call(["scp", "-q", "-P", str(self.port)] + self.common + list(files)
                       + [f"{self.host}:{self.remote_dir}/"], "copying with scp")
        if r.returncode != 0:
            raise SshError(f"scp to {self.host}:{self.remote_dir} failed: {r.stderr.strip()[-800:]}")

    def remote(self, path: str) -> str:
        return f"{self.remote_dir}/{os.path.basename(path)}"

    def bench(self, path: str, token_lists=None, *, source: str = "", num_threads: int = 1,
              cpus: Optional[Sequence[int]] = None, warmup: int = 20, runs: int = 200,
              min_seconds: float = 0.0) -> BenchRecord:
        """Copies model, inputs and runner to the board, runs it, returns the record.

        A seq2seq encoder's decoder and its first-step inputs go too, and are timed as a second
        invoke (`device_pair`).

        Args:
          path: the .tflite on the host.
          token_lists: utterances to encode with the model's metadata (None: random inputs).
          source: what the utterances are, for the record.
          num_threads: interpreter threads.
          cpus: CPUs to pin to on the board (None: its last `num_threads` CPUs).
          warmup, runs: untimed and timed invokes.
          min_seconds: keep timing past `runs` until this much time has passed.

        Raises:
          SshError: see the class; BenchError if the model is missing.
        """
        if not os.path.isfile(path):
            raise BenchError(f"{path}: model file not found; pass existing .tflite files to --models")
        pair = seq2seq_pair(path)
        with tempfile.TemporaryDirectory(prefix="prado_bench_ssh_") as tmp:
            npz, inputs = prepare_inputs(path, token_lists, tmp, source)
            files = [path, RUNNER] + ([npz] if npz else [])
            if pair is not None:
                dec_npz, dec_inputs = prepare_decoder_inputs(path, pair.decoder, token_lists, tmp,
                                                             source)
                files += [pair.decoder, dec_npz]
            self.copy(files)
        timing = dict(num_threads=num_threads, cpus=cpus, warmup=warmup, runs=runs,
                      min_seconds=min_seconds)
        rec = self._run(path, npz, inputs, **timing)
        if pair is not None:
            device_pair(rec, pair.decoder, self._run(pair.decoder, dec_npz, dec_inputs, **timing),
                        "runner.py (numpy and LiteRT only)")
        return rec

    def _run(self, path: str, npz: Optional[str], inputs: str, *, num_threads: int,
             cpus: Optional[Sequence[int]], warmup: int, runs: int,
             min_seconds: float) -> BenchRecord:
        """Runs the copied runner on the copied `path` (and `npz`) -> its record."""
        cmd = [self.remote_python, self.remote(RUNNER), "--model", self.remote(path),
               "--num_threads", str(num_threads), "--warmup", str(warmup), "--runs", str(runs),
               "--min_seconds", str(min_seconds), "--cpus", ",".join(map(str, cpus)) if cpus else "last"]
        if npz:
            cmd += ["--inputs", self.remote(npz)]
        r = self.ssh(" ".join(shlex.quote(c) for c in cmd), "running the benchmark")
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        if r.returncode != 0 or not lines:
            hint = ""
            if r.returncode == 127 or "No such file" in r.stderr:
                hint = (f"; is --remote_python={self.remote_python} right? It needs numpy and "
                        f"ai-edge-litert (or tflite-runtime) on the board")
            raise SshError(f"the runner failed on {self.host} (exit {r.returncode}): "
                           f"{(r.stderr or r.stdout).strip()[-1500:]}{hint}")
        result = json.loads(lines[-1])
        return record_from_runner(path, "ssh", f"{self.host}: {result.get('machine', '?')}",
                                  result, inputs, warmup)
