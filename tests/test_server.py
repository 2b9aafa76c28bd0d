"""The embedded redis-server and remote URLs: persistence, shutdown, credentials, TLS."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from factories import make_episode

from replay.buffer import BufferError, ReplayBuffer
from replay.server import EmbeddedRedis, live_server_url, redis_url
from replay.tables import TableConfig


def test_every_acknowledged_episode_survives_a_killed_server(tmp_path):
    server = EmbeddedRedis(tmp_path).start()
    buffer = ReplayBuffer(server.url)
    buffer.create_table(TableConfig(name="t"))
    acknowledged = []
    for start in range(0, 500, 50):
        batch = [make_episode(i) for i in range(start, start + 50)]
        buffer.insert("t", batch)  # returned: acknowledged
        acknowledged += [e.id for e in batch]
    os.kill(server.process.pid, signal.SIGKILL)  # no clean shutdown, no final flush
    server.process.wait()
    server.process = None
    with EmbeddedRedis(tmp_path) as restarted:
        reopened = ReplayBuffer(restarted.url)
        assert set(reopened.ids("t")) == set(acknowledged)
        assert reopened.get("t", acknowledged[-1]) == make_episode(499)
        assert reopened.stats("t").counters["inserts"] == 500


def test_stop_by_pid_and_the_state_file(tmp_path):
    server = EmbeddedRedis(tmp_path).start()
    pid = server.process.pid
    assert live_server_url(tmp_path) == server.url  # other commands find the running server
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert live_server_url(tmp_path) is None


def test_ctrl_c_in_the_owner_stops_the_server(tmp_path):
    """The owning process gets SIGINT mid-run: its `with` block still stops redis-server."""
    script = (  # Ctrl-C as in a terminal, also when the suite itself runs as a background job (SIGINT ignored)
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from replay.server import EmbeddedRedis\n"
        f"with EmbeddedRedis({str(tmp_path)!r}) as s:\n"
        "    print(s.process.pid, flush=True)\n"
        "    time.sleep(60)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(owner.stdout.readline())
    owner.send_signal(signal.SIGINT)
    owner.wait(timeout=20)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("redis-server outlived its owner")


def test_a_given_url_is_used_as_is(tmp_path, redis_server):
    with redis_url(redis_server.url, tmp_path) as url:
        assert url == redis_server.url
    assert not (tmp_path / "redis").exists()  # nothing embedded was started


@pytest.fixture
def secured_server(tmp_path):
    """A redis-server with an ACL user and TLS only, started the way a managed Redis would be."""
    assert shutil.which("openssl"), "openssl is needed to make a test certificate"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "key.pem",
         "-out", tmp_path / "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    from replay.server import free_port

    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--tls-cert-file", tmp_path / "cert.pem", "--tls-key-file", tmp_path / "key.pem",
         "--tls-ca-cert-file", tmp_path / "cert.pem", "--tls-auth-clients", "no",
         "--user", "default", "off", "--user", "explorer", "on", ">s3cret", "~*", "&*", "+@all"],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    yield port, tmp_path / "cert.pem"
    process.kill()
    process.wait()


def test_rediss_url_with_username_and_password(secured_server):
    port, ca = secured_server
    url = f"rediss://explorer:s3cret@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    for _ in range(50):
        try:
            ReplayBuffer(url).ping()
            break
        except BufferError:
            time.sleep(0.1)
    buffer = ReplayBuffer(url)
    buffer.create_table(TableConfig(name="t"))
    buffer.insert("t", [make_episode(1)])
    assert buffer.get("t", make_episode(1).id) == make_episode(1)
    wrong = ReplayBuffer(f"rediss://explorer:nope@127.0.0.1:{port}/0?ssl_ca_certs={ca}")
    with pytest.raises(BufferError, match=r"refused the credentials") as caught:
        wrong.ping()
    assert "nope" not in str(caught.value)  # passwords never reach messages
