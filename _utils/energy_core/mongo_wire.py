"""MongoDB commands over the wire protocol (OP_MSG, MongoDB 3.6 and later), without a driver.

Enough for the health checks (``ping``, ``count``) and the user management of ``energy.mongo_users``
on a minion that has no pymongo: a BSON encoder and decoder for the types these commands use, and
SCRAM-SHA-256 authentication (RFC 5802 and 7677, MongoDB's default mechanism since 4.0).
"""

import base64
import datetime
import hashlib
import hmac
import os
import socket
import struct
from urllib.parse import unquote, urlsplit

OP_MSG = 2013
MAX_REPLY = 16 * 1024 * 1024  # the replies read here are a few kilobytes; MongoDB's own cap is 48 MB
MAX_DEPTH = 32


class CommandError(OSError):
    """The server answered ``ok: 0`` (``code`` is MongoDB's error code, 13 = Unauthorized)."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _cstring(text):
    data = text.encode()
    if b"\x00" in data:
        raise ValueError(f"a BSON key cannot hold a NUL byte: {text!r}")
    return data + b"\x00"


def _element(key, value):
    name = _cstring(key)
    if isinstance(value, bool):
        return b"\x08" + name + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if -2**31 <= value < 2**31:
            return b"\x10" + name + struct.pack("<i", value)
        return b"\x12" + name + struct.pack("<q", value)
    if isinstance(value, float):
        return b"\x01" + name + struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode() + b"\x00"
        return b"\x02" + name + struct.pack("<i", len(data)) + data
    if isinstance(value, datetime.datetime):  # a UTC datetime (the TTL index expires by it)
        return b"\x09" + name + struct.pack("<q", int(value.timestamp() * 1000))
    if isinstance(value, bytes):
        return b"\x05" + name + struct.pack("<i", len(value)) + b"\x00" + value
    if isinstance(value, dict):
        return b"\x03" + name + encode(value)
    if isinstance(value, (list, tuple)):
        return b"\x04" + name + encode({str(i): v for i, v in enumerate(value)})
    if value is None:
        return b"\x0a" + name
    raise TypeError(f"cannot encode {type(value).__name__} for key {key!r}")


def encode(document):
    """BSON of a document of str, bool, int, float, datetime, bytes, None, dict and list values."""
    body = b"".join(_element(key, value) for key, value in document.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _size(data, at, smallest, what):
    size = struct.unpack_from("<i", data, at)[0]
    if size < smallest or at + size > len(data):
        raise ValueError(f"BSON {what} of a bad size ({size})")
    return size


def decode(data, at=0, depth=0, as_list=False):
    """The BSON document at ``data[at:]`` as a dict (or a list for an array). ObjectIds come back
    as hex strings, dates as aware datetimes, binaries as bytes; other types are refused."""
    if depth > MAX_DEPTH:
        raise ValueError("BSON nested too deep")
    end = at + _size(data, at, 5, "document") - 1
    at += 4
    result = {}
    while at < end:
        kind = data[at]
        key_end = data.index(b"\x00", at + 1, end)
        key = data[at + 1:key_end].decode(errors="replace")
        at = key_end + 1
        if kind == 0x01:
            value, at = struct.unpack_from("<d", data, at)[0], at + 8
        elif kind == 0x02:
            size = _size(data, at, 1, "string")
            value, at = data[at + 4:at + 3 + size].decode(errors="replace"), at + 4 + size
        elif kind in (0x03, 0x04):
            size = _size(data, at, 5, "document")
            value, at = decode(data, at, depth + 1, kind == 0x04), at + size
        elif kind == 0x05:
            size = _size(data, at, 0, "binary")
            value, at = bytes(data[at + 5:at + 5 + size]), at + 5 + size
        elif kind == 0x07:
            value, at = data[at:at + 12].hex(), at + 12
        elif kind == 0x08:
            value, at = data[at] == 1, at + 1
        elif kind == 0x09:
            millis = struct.unpack_from("<q", data, at)[0]
            value = datetime.datetime.fromtimestamp(millis / 1000, datetime.timezone.utc)
            at += 8
        elif kind == 0x0A:
            value = None
        elif kind == 0x10:
            value, at = struct.unpack_from("<i", data, at)[0], at + 4
        elif kind in (0x11, 0x12):
            value, at = struct.unpack_from("<q" if kind == 0x12 else "<Q", data, at)[0], at + 8
        else:
            raise ValueError(f"BSON type {kind:#x} not understood")
        result[key] = value
    if at != end or data[end] != 0:
        raise ValueError("BSON element runs past its document")
    return list(result.values()) if as_list else result


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the connection was closed")
        data += chunk
    return data


def _scram_name(user):
    return user.replace("=", "=3D").replace(",", "=2C")


def _hmac(key, text):
    return hmac.new(key, text.encode() if isinstance(text, str) else text, hashlib.sha256).digest()


def scram_proof(password, nonce, salt, iterations, auth_message):
    """The SCRAM-SHA-256 client proof and the server signature expected back (RFC 5802 section 3)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = _hmac(salted, "Client Key")
    signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    return base64.b64encode(proof).decode(), base64.b64encode(_hmac(_hmac(salted, "Server Key"), auth_message)).decode()


def _attributes(payload):
    return dict(part.split("=", 1) for part in payload.decode().split(",") if "=" in part)


class Connection:
    """One connection to a MongoDB server; ``command`` runs commands on it."""

    def __init__(self, address, timeout=3):
        host, _, port = address.rpartition(":")
        self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)
        self.request_id = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def command(self, database, document, check=True):
        """Run ``document`` (first key: the command) on ``database``; the reply as a dict. Raises
        CommandError on ``ok: 0`` when ``check``, OSError when the server does not answer."""
        self.request_id += 1
        body = encode(dict(document, **{"$db": database}))
        message = struct.pack("<I", 0) + b"\x00" + body
        self.sock.sendall(struct.pack("<iiii", 16 + len(message), self.request_id, 0, OP_MSG) + message)
        length, _, _, opcode = struct.unpack("<iiii", _recv_exactly(self.sock, 16))
        if not 16 < length <= MAX_REPLY:
            raise OSError(f"answered with a message of {length} bytes")
        reply = _recv_exactly(self.sock, length - 16)
        if opcode != OP_MSG:
            raise OSError(f"answered with opcode {opcode}, not OP_MSG")
        try:
            result = decode(reply[5:])  # flag bits, then the body section's kind byte
        except (ValueError, struct.error, IndexError) as exc:
            raise OSError(f"unreadable reply ({exc})") from None
        if check and not result.get("ok"):
            raise CommandError(f"{next(iter(document))}: {result.get('errmsg', 'failed')}", result.get("code"))
        return result

    def authenticate(self, user, password, source="admin"):
        """SCRAM-SHA-256 as ``user`` of ``source``. Raises CommandError (code 18) when refused and
        OSError when the server's signature is wrong (not the server it claims to be)."""
        nonce = base64.b64encode(os.urandom(24)).decode()
        first_bare = f"n={_scram_name(user)},r={nonce}"
        reply = self.command(source, {"saslStart": 1, "mechanism": "SCRAM-SHA-256",
                                      "payload": ("n,," + first_bare).encode(), "autoAuthorize": 1,
                                      "options": {"skipEmptyExchange": True}})
        server_first = reply["payload"]
        attrs = _attributes(server_first)
        if not attrs.get("r", "").startswith(nonce) or int(attrs.get("i", 0)) < 4096:
            raise OSError("the server's SCRAM challenge is not acceptable")
        final_bare = f"c=biws,r={attrs['r']}"
        auth_message = f"{first_bare},{server_first.decode()},{final_bare}"
        proof, expected = scram_proof(password, nonce, base64.b64decode(attrs["s"]), int(attrs["i"]), auth_message)
        reply = self.command(source, {"saslContinue": 1, "conversationId": reply["conversationId"],
                                      "payload": f"{final_bare},p={proof}".encode()})
        if _attributes(reply["payload"]).get("v") != expected:
            raise OSError("the server's SCRAM signature is wrong")
        while not reply.get("done"):
            reply = self.command(source, {"saslContinue": 1, "conversationId": reply["conversationId"],
                                          "payload": b""})


def parse_uri(uri):
    """``(address, user, password, auth source)`` of a ``mongodb://`` URI (one host)."""
    parts = urlsplit(uri)
    query = dict(item.split("=", 1) for item in parts.query.split("&") if "=" in item)
    address = parts.netloc.rpartition("@")[2]
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return address, user, password, query.get("authSource", "admin")


def command(address, database, document, timeout=3, user=None, password=None, source="admin"):
    """Run ``document`` on ``database`` at ``address`` (``host:port``) on a new connection, as
    ``user`` when given; returns the reply. Raises OSError when the server does not answer."""
    with Connection(address, timeout) as conn:
        if user:
            conn.authenticate(user, password or "", source)
        return conn.command(database, document, check=False)
