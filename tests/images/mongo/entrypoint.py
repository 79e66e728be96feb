"""STAND-IN for the upstream mongo image's docker-entrypoint.sh, for what the energy formula uses:
MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD (or their *_FILE variants) create a root
user in `admin` on the first start (an empty /data/db), and turn authentication on for every start."""

import os
import socket
import subprocess
import sys
import time

import pymongo

DATA = "/data/db"
MARKER = os.path.join(DATA, ".energy-initdb-done")  # upstream looks for existing database files
SERVER = ["secantusd-py", "--port", "27017", "--storage-path", DATA, "--standalone"]


def env(name):
    """``name`` from the environment, or read from the file ``name_FILE`` names (upstream's file_env)."""
    if os.environ.get(name) and os.environ.get(name + "_FILE"):
        sys.exit(f"error: both {name} and {name}_FILE are set (but are exclusive)")
    if os.environ.get(name + "_FILE"):
        with open(os.environ[name + "_FILE"], encoding="utf-8") as handle:
            return handle.read().rstrip("\n")
    return os.environ.get(name, "")


def wait_port(port, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("error: the database did not start for its first-start setup")


def first_start(user, password):
    """Upstream starts mongod on localhost only, creates the root user, and stops it."""
    port = 27099
    server = subprocess.Popen(["secantusd-py", "--host", "127.0.0.1", "--port", str(port), "--storage-path", DATA,
                               "--standalone"])
    try:
        wait_port(port)
        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=10000)
        client.admin.command("createUser", user, pwd=password, roles=[{"role": "root", "db": "admin"}])
        print(f"first start: root user {user!r} created in admin", flush=True)
    finally:
        server.terminate()
        server.wait(30)
    with open(MARKER, "w", encoding="utf-8") as handle:
        handle.write("done\n")


def main():
    user, password = env("MONGO_INITDB_ROOT_USERNAME"), env("MONGO_INITDB_ROOT_PASSWORD")
    if bool(user) != bool(password):
        sys.exit("error: missing MONGO_INITDB_ROOT_USERNAME or MONGO_INITDB_ROOT_PASSWORD: both must be specified "
                 "for a user to be created")
    command = SERVER + ["--host", "0.0.0.0"]
    if user:
        if not os.path.exists(MARKER):
            first_start(user, password)
        command.append("--auth")
    os.execvp(command[0], command + sys.argv[1:])


if __name__ == "__main__":
    main()
