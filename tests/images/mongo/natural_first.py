"""STAND-IN fix: secantusdb answers an unsorted, unfiltered ``find(limit=n)`` the way mongod does,
by reading the first ``n`` documents in natural order, instead of decoding the whole collection.

SmartWatts (powerapi 2.x, stream mode) takes each report with ``find_one_and_delete({})``: a
``findAndModify`` with an empty query, no sort and ``remove: true``, which secantusdb 0.7.0b3
serves with ``Storage.find_matching(filter={}, limit=1)``. That method walks and decodes every
document before it applies the limit, so each report costs time in proportion to the backlog
(measured on the unpatched stand-in: 988 reports/s with 100 waiting, 77/s with 1,000, 16/s with
4,000). A formula stopped for a few minutes then never catches up with its sensors, which mongod,
whose first document in natural order is one cursor step, does not do. Only that case is
changed: any filter, sort, hint, skip, projection, collation or bound, and the oplog and system
collections, keep secantusdb's own path (``let`` is ignored: with no filter nothing reads it, and
the server always passes ``$$NOW`` in it). Imported at interpreter start by
``energy-natural-first.pth`` in the image; the image build checks that it applied.
"""

import itertools

from secantus import storage as _storage

_original = _storage.Storage.find_matching
_SPECIAL = ("_is_oplog_rs", "_is_system_users", "_is_system_version")


def _first_in_natural_order(self, db, coll, limit):
    """The first ``limit`` documents of ``db.coll`` in insertion order, and the cursor let go."""
    with self._lock:
        walk = self._scan_docs_natural(db, coll)
        try:
            blobs = [blob for _rid, _id_key, blob in itertools.islice(walk, limit)]
        finally:
            walk.close()
            cursor = self._cursor_optional(_storage._doc_table_for(db, coll))  # pylint: disable=protected-access
            if cursor is not None:  # _cursor_optional resets a cached cursor; drop the snapshot now
                cursor.reset()
    return [_storage.bson.decode(blob) for blob in blobs]


def find_matching(self, db, coll, filter=None, **options):  # pylint: disable=redefined-builtin
    limit = options.get("limit", 0)
    plain = (not filter and limit > 0 and not options.get("skip")
             and all(options.get(key) in (None, {}) for key in ("sort", "projection", "collation"))
             and all(options.get(key) is None for key in ("hint", "min_bound", "max_bound"))
             and not any(getattr(self, check)(db, coll) for check in _SPECIAL))
    if not plain:
        return _original(self, db, coll, filter, **options)
    self._refresh_read_snapshot()  # pylint: disable=protected-access
    return _first_in_natural_order(self, db, coll, limit)


def applied():
    return _storage.Storage.find_matching is find_matching


for _name in _SPECIAL + ("_scan_docs_natural", "_cursor_optional", "_refresh_read_snapshot"):
    if not hasattr(_storage.Storage, _name):
        raise ImportError(f"secantusdb changed: Storage.{_name} is gone; review natural_first.py")
if not hasattr(_storage, "_doc_table_for") or not hasattr(_storage, "bson"):
    raise ImportError("secantusdb changed: storage._doc_table_for or storage.bson is gone; review natural_first.py")
_storage.Storage.find_matching = find_matching
