"""energy.healthy's diagnosis: what counts as unhealthy for a container of the stack."""

import datetime
import socket
import struct
import threading

import pytest

from energy_core import health, schema


def inspected(status="running", age=3600):
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=age)
    return {"State": {"Status": status, "StartedAt": started.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")}}


def test_missing_and_stopped_containers():
    assert health.diagnose(None, {}, 60) == "the container is missing"
    assert health.diagnose(inspected("exited"), {}, 60) == "the container is exited"


# the OP_MSG reply of the MongoDB stand-in (energy-test/mongo) to {ping: 1}: {ok: 1.0}
PONG = b"\x00\x00\x00\x00\x00\x11\x00\x00\x00\x01ok\x00" + struct.pack("<d", 1.0) + b"\x00"


@pytest.fixture
def mongo_port():
    """A port answering one OP_MSG with PONG, as a MongoDB answers {ping: 1}."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def answer():
        conn, _ = server.accept()
        with conn:
            length, request_id, _, _ = struct.unpack("<iiii", conn.recv(16))
            conn.recv(length - 16)
            conn.sendall(struct.pack("<iiii", 16 + len(PONG), 2, request_id, 2013) + PONG)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()


def test_mongo_that_does_not_answer_a_ping(closed_port, open_port, mongo_port):
    reason = health.diagnose(inspected(), {"mongo": f"127.0.0.1:{closed_port}"}, 60)
    assert reason.startswith(f"127.0.0.1:{closed_port} does not answer a MongoDB ping")
    # accepting connections is not answering: a hung mongod is unhealthy
    reason = health.diagnose(inspected(), {"mongo": f"127.0.0.1:{open_port}"}, 60)
    assert reason.startswith(f"127.0.0.1:{open_port} does not answer a MongoDB ping")
    assert health.diagnose(inspected(), {"mongo": f"127.0.0.1:{mongo_port}"}, 60) is None


def test_http_service_that_does_not_answer(closed_port):
    reason = health.diagnose(inspected(), {"http": f"http://127.0.0.1:{closed_port}/ping"}, 60)
    assert reason.startswith(f"GET http://127.0.0.1:{closed_port}/ping") and "does not answer" in reason


def test_young_containers_are_not_judged_on_their_output(closed_port):
    # a formula's backlog check needs its MongoDB; within the grace period it is not asked
    probe = {"backlog": {"uri": f"mongodb://127.0.0.1:{closed_port}", "database": "d", "collection": "c", "max": 1}}
    assert health.diagnose(inspected(age=5), probe, grace=60) is None


def test_durations():
    assert schema.duration_seconds("30d") == 30 * 86400
    assert schema.duration_seconds("720h0m0s") == 30 * 86400
    assert schema.duration_seconds("INF") == 0
    with pytest.raises(ValueError):
        schema.duration_seconds("30 days")
