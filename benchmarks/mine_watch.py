"""Counts the master's reads of the mine, from outside Salt, with inotify (Linux).

Salt 3008's master keeps each minion's mine in its cache (the default ``localfs`` cache, no
memcache), bank ``mine``: ``<cachedir>/mine/<id>.p``. A ``mine.get`` (a minion's, or a runner's)
opens that file of every minion it matches and closes it without writing; a ``mine.send`` reads
its sender's file, then writes a temporary file and renames it over ``<id>.p``. A watch on the
bank's directory therefore counts, per minion: reads (``IN_CLOSE_NOWRITE``) and writes
(``IN_MOVED_TO``); a minion's mine reads are its reads less its writes (less one: the first
``mine.send`` of a minion with no entry yet reads nothing).

    with MineWatch(cachedir, minions) as watch:
        ...  # an orch
    watch.reads()  # {minion: mine reads}
"""

import ctypes
import ctypes.util
import os
import select
import struct
import threading

IN_CLOSE_NOWRITE = 0x00000010
IN_MOVED_TO = 0x00000080
IN_NONBLOCK = 0o4000
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class MineWatch:
    def __init__(self, cachedir, minions):
        self.bank = os.path.join(cachedir, "mine")
        self.existed = set()
        self.counts = {minion: {"read": 0, "write": 0} for minion in minions}
        self.fd = None
        self.stopping = threading.Event()
        self.thread = None

    def __enter__(self):
        self.existed = {name[:-2] for name in os.listdir(self.bank) if name.endswith(".p")}
        self.fd = _libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, self.bank.encode(), IN_CLOSE_NOWRITE | IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {self.bank}")
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()
        return self

    def _drain(self):
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if not ready:
                if self.stopping.is_set():
                    return
                continue
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            offset = 0
            while offset < len(data):
                _wd, mask, _cookie, size = EVENT.unpack_from(data, offset)
                name = data[offset + EVENT.size:offset + EVENT.size + size].rstrip(b"\0").decode()
                offset += EVENT.size + size
                minion = name[:-2] if name.endswith(".p") else None
                if minion not in self.counts:
                    continue
                if mask & IN_CLOSE_NOWRITE:
                    self.counts[minion]["read"] += 1
                elif mask & IN_MOVED_TO:
                    self.counts[minion]["write"] += 1

    def __exit__(self, *_exc):
        self.stopping.set()
        self.thread.join()
        os.close(self.fd)

    def reads(self):
        """{minion: mine reads}: reads of its entry less the one each mine.send makes before writing
        (none for the first send of a minion that had no entry)."""
        return {m: c["read"] - c["write"] + (0 if m in self.existed or not c["write"] else 1)
                for m, c in self.counts.items()}

    def sends(self):
        return {m: c["write"] for m, c in self.counts.items()}
