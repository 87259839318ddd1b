"""prado_tiny.bench.ssh end to end against a real sshd started on 127.0.0.1 with throwaway keys.

The "board" is this machine: the runner runs under this test's Python (`remote_python`), in a
separate remote folder, reached only through ssh and scp. `.ci/run` installs openssh-server when
/usr/sbin/sshd is absent.
"""
import os
import socket
import subprocess
import sys
import time

import pytest

from prado_tiny.bench.local import dataset_tokens
from prado_tiny.bench.ssh import SshError, SshTarget

SSHD = "/usr/sbin/sshd"
NO_HOST_CHECK = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """-> (port, user key path, user) of an sshd that accepts only that key, stopped afterwards."""
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} not found: install openssh-server (apt-get install -y openssh-server); "
                    f".ci/run does it when absent")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "user_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation folder
    port = free_port()
    config = d / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "UsePAM no",
        "StrictModes no", "PermitRootLogin prohibit-password", "Subsystem sftp internal-sftp", f"PidFile {d / 'sshd.pid'}", ""]))
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=open(d / "sshd.log", "w"))
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"sshd did not listen on {port}: {(d / 'sshd.log').read_text()}")
    import getpass
    yield port, str(d / "user_key"), getpass.getuser()
    proc.terminate()
    proc.wait(timeout=10)


def target(sshd, tmp_path, **kw):
    port, key, user = sshd
    return SshTarget(f"{user}@127.0.0.1", port=port, key=key, remote_python=sys.executable,
                     remote_dir=str(tmp_path / "board"), options=NO_HOST_CHECK, **kw)


def test_bench_over_ssh_with_real_utterances(sshd, tiny_export, tmp_path):
    path = tiny_export[1]
    tokens = dataset_tokens("demo", None, "dev", ["en"], 20)
    rec = target(sshd, tmp_path).bench(path, tokens, source="demo dev", warmup=5, runs=40)
    board = tmp_path / "board"
    # The runner, the model and its encoded inputs were copied to the board's folder.
    assert sorted(os.listdir(board)) == sorted(["runner.py", os.path.basename(path),
                                                "m.inputs.npz"])
    assert rec.target == "ssh" and rec.inputs == "demo dev: 20 utterances"
    assert rec.runs == 40 and rec.warmup == 5
    assert 0 < rec.min_us <= rec.p50_us <= rec.p90_us <= rec.p99_us
    assert rec.init_us > 0 and rec.first_us > 0
    assert rec.size_bytes == os.path.getsize(path) and rec.macs > 0
    assert rec.cpus == [sorted(os.sched_getaffinity(0))[-1]]  # pinned to the board's last CPU
    assert rec.device.startswith(f"{sshd[2]}@127.0.0.1: ")


def test_random_inputs_and_explicit_cpu(sshd, tiny_export, tmp_path):
    rec = target(sshd, tmp_path).bench(tiny_export[1], None, cpus=[0], warmup=1, runs=5)
    assert rec.inputs == "random" and rec.cpus == [0] and rec.runs == 5
    assert "m.inputs.npz" not in os.listdir(tmp_path / "board")


def test_wrong_key_is_refused(sshd, tiny_export, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")],
                   check=True)
    port, _, user = sshd
    t = SshTarget(f"{user}@127.0.0.1", port=port, key=str(tmp_path / "other"),
                  remote_python=sys.executable, remote_dir=str(tmp_path / "b"), options=NO_HOST_CHECK)
    with pytest.raises(SshError, match="cannot reach .*check --host, --ssh_port and --ssh_key"):
        t.bench(tiny_export[1], None, runs=1)


def test_missing_remote_python(sshd, tiny_export, tmp_path):
    t = target(sshd, tmp_path)
    t.remote_python = "/nonexistent/python3"
    with pytest.raises(SshError, match="runner failed on .*--remote_python=/nonexistent/python3"):
        t.bench(tiny_export[1], None, runs=1)


def test_missing_key_file(tmp_path):
    with pytest.raises(SshError, match="--ssh_key=.*no such file"):
        SshTarget("u@h", key=str(tmp_path / "nokey"))


def test_prado_bench_cli_over_ssh(sshd, tiny_export, tmp_path):
    port, key, user = sshd
    out = tmp_path / "r.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-m", "prado_tiny.bench_main", f"--models={tiny_export[1]}",
                        "--target=ssh", f"--host={user}@127.0.0.1", f"--ssh_port={port}",
                        f"--ssh_key={key}", f"--remote_python={sys.executable}",
                        f"--remote_dir={tmp_path / 'board'}", "--runs=10", "--warmup=1",
                        "--min_seconds=0", "--examples=5", f"--output_json={out}"]
                       + [f"--ssh_option={o}" for o in NO_HOST_CHECK],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    (rec,) = __import__("json").loads(out.read_text())["records"]
    assert rec["target"] == "ssh" and rec["runs"] == 10 and rec["inputs"] == "demo dev: 5 utterances"
    assert "| ssh |" in r.stdout
