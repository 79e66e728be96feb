"""The driverless MongoDB client: BSON both ways, SCRAM-SHA-256 against RFC 7677's example."""

import base64
import datetime
import struct

import pytest

from energy_core import mongo_wire


def test_scram_sha_256_matches_rfc_7677():
    nonce = "rOprNGfwEbeRWgbNEkqO"
    server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    final_bare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"n=user,r={nonce},{server_first},{final_bare}"
    proof, server_signature = mongo_wire.scram_proof("pencil", nonce, base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="),
                                                     4096, auth_message)
    assert proof == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    assert server_signature == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_bson_round_trip_of_what_user_management_sends():
    document = {"createUser": "energy-sensor", "pwd": "p@ss:word/12", "roles": [{"role": "r", "db": "admin"}],
                "n": 2**40, "small": -3, "x": 1.5, "flag": True, "none": None, "payload": b"n,,n=u"}
    assert mongo_wire.decode(mongo_wire.encode(document)) == document


def test_bson_dates_and_object_ids_decode():
    body = (b"\x07_id\x00" + bytes(range(12)) + b"\x09t\x00" + struct.pack("<q", 1_700_000_000_000))
    data = struct.pack("<i", len(body) + 5) + body + b"\x00"
    decoded = mongo_wire.decode(data)
    assert decoded["_id"] == bytes(range(12)).hex()
    assert decoded["t"] == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)


def test_bson_dates_encode_as_utc_milliseconds():
    when = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc)
    data = mongo_wire.encode({"t": when})
    assert data[4:7] == b"\x09t\x00" and struct.unpack("<q", data[7:15])[0] == 1_700_000_000_123
    assert mongo_wire.decode(data) == {"t": when}


@pytest.mark.parametrize("document", [
    struct.pack("<i", 12) + b"\x10a\x00" + struct.pack("<i", 1) + b"\x01",        # runs past its end
    struct.pack("<i", 40) + b"\x10a\x00" + struct.pack("<i", 1) + b"\x00",        # longer than the data
    struct.pack("<i", 9) + b"\x7fa\x00" + b"\x00" * 2,                            # unknown type
])
def test_malformed_bson_is_refused(document):
    with pytest.raises((ValueError, struct.error)):
        mongo_wire.decode(document)


def test_bson_nesting_is_bounded():
    inner = {}
    for _ in range(mongo_wire.MAX_DEPTH + 2):
        inner = {"a": inner}
    with pytest.raises(ValueError, match="too deep"):
        mongo_wire.decode(mongo_wire.encode(inner))


@pytest.mark.parametrize("uri, expected", [
    ("mongodb://10.0.0.1:27017", ("10.0.0.1:27017", None, None, "admin")),
    ("mongodb://energy-sensor:p%40ss%2Fw@10.0.0.1:27018/?authSource=admin",
     ("10.0.0.1:27018", "energy-sensor", "p@ss/w", "admin")),
])
def test_uris_give_address_and_credentials(uri, expected):
    assert mongo_wire.parse_uri(uri) == expected


def test_keep_retries_while_the_server_gets_ready_then_names_a_refused_admin(monkeypatch):
    from energy_core import mongo_users

    calls = []

    def ensure(connect, admin, users, test, expire=None):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the connection was closed")  # the image still making its root user
        return True, {}, "energy-sensor: as the pillar wants"

    monkeypatch.setattr(mongo_users, "ensure", ensure)
    far = float("inf")
    admin = {"name": "energy-admin", "password": "x"}
    assert mongo_users.keep(None, admin, [], False, far, "mongo on ctl", "ctl", sleep=lambda s: None) == (
        True, {}, "energy-sensor: as the pillar wants, on mongo on ctl")
    assert len(calls) == 2

    def refused(connect, admin, users, test, expire=None):
        raise mongo_users.mongo_wire.CommandError("saslContinue: authentication failed", 18)

    monkeypatch.setattr(mongo_users, "ensure", refused)
    result, changes, comment = mongo_users.keep(None, admin, [], False, 0, "mongo on ctl", "ctl", sleep=lambda s: None)
    assert result is False and changes == {}
    assert comment.startswith("mongo on ctl refuses energy-admin with energy:mongo:admin_password") and "Fix:" in comment
