"""One MongoDB command over the wire protocol (OP_MSG, MongoDB 3.6 and later), without a driver.

Enough for the health checks (``ping``, ``count``) on a minion that has no pymongo: a flat BSON
encoder for the command and a decoder for the reply's top-level scalars.
"""

import socket
import struct

OP_MSG = 2013
MAX_REPLY = 16 * 1024 * 1024  # the replies read here are a few dozen bytes; MongoDB's own cap is 48 MB


def _cstring(text):
    return text.encode() + b"\x00"


def encode(document):
    """BSON of a flat document of str, bool, int and float values."""
    body = b""
    for key, value in document.items():
        if isinstance(value, bool):
            body += b"\x08" + _cstring(key) + (b"\x01" if value else b"\x00")
        elif isinstance(value, int):
            body += b"\x10" + _cstring(key) + struct.pack("<i", value)
        elif isinstance(value, float):
            body += b"\x01" + _cstring(key) + struct.pack("<d", value)
        elif isinstance(value, str):
            data = value.encode() + b"\x00"
            body += b"\x02" + _cstring(key) + struct.pack("<i", len(data)) + data
        else:
            raise TypeError(f"cannot encode {type(value).__name__} for key {key!r}")
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


# sizes of the BSON types whose length is fixed; strings, documents and binaries carry their own
_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def decode_scalars(data):
    """The top-level double, string, bool, int32 and int64 values of a BSON document."""
    result = {}
    end = struct.unpack_from("<i", data, 0)[0] - 1
    at = 4
    while at < end:
        kind = data[at]
        key_end = data.index(b"\x00", at + 1)
        key = data[at + 1:key_end].decode(errors="replace")
        at = key_end + 1
        if kind == 0x01:
            result[key] = struct.unpack_from("<d", data, at)[0]
        elif kind == 0x02:
            size = struct.unpack_from("<i", data, at)[0]
            if size < 1:
                raise ValueError("BSON string of a negative size")
            result[key] = data[at + 4:at + 3 + size].decode(errors="replace")
            at += 4 + size
            continue
        elif kind == 0x08:
            result[key] = data[at] == 1
        elif kind == 0x10:
            result[key] = struct.unpack_from("<i", data, at)[0]
        elif kind == 0x12:
            result[key] = struct.unpack_from("<q", data, at)[0]
        if kind in _FIXED:
            at += _FIXED[kind]
        elif kind in (0x03, 0x04):
            size = struct.unpack_from("<i", data, at)[0]
            if size < 5:  # the smallest document: its length and its terminating byte
                raise ValueError("BSON document shorter than 5 bytes")
            at += size
        elif kind == 0x05:
            size = struct.unpack_from("<i", data, at)[0]
            if size < 0:
                raise ValueError("BSON binary of a negative size")
            at += 5 + size
        else:
            raise ValueError(f"BSON type {kind:#x} not understood")
    return result


def _recv_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("the connection was closed")
        data += chunk
    return data


def command(address, database, document, timeout=3):
    """Run ``document`` (first key: the command) on ``database`` at ``address`` (``host:port``);
    returns the reply's top-level scalars. Raises OSError when the server does not answer."""
    host, _, port = address.rpartition(":")
    body = encode(dict(document, **{"$db": database}))
    message = struct.pack("<I", 0) + b"\x00" + body
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack("<iiii", 16 + len(message), 1, 0, OP_MSG) + message)
        length, _, _, opcode = struct.unpack("<iiii", _recv_exactly(sock, 16))
        if not 16 < length <= MAX_REPLY:
            raise OSError(f"answered with a message of {length} bytes")
        reply = _recv_exactly(sock, length - 16)
    if opcode != OP_MSG:
        raise OSError(f"answered with opcode {opcode}, not OP_MSG")
    try:
        return decode_scalars(reply[5:])  # flag bits, then the body section's kind byte
    except (ValueError, struct.error, IndexError) as exc:
        raise OSError(f"unreadable reply ({exc})") from None
