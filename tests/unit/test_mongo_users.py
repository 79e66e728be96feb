"""The MongoDB users of the stack: one sensor user and one formula user per report collection, each
with a password of its own and rights on its own collection only; the shared users of an earlier
layout dropped; test mode changes nothing.

``ensure`` runs against a small in-memory server that answers the user-management commands as
MongoDB does (the integration tests run the same code against the stand-in server over the wire)."""

import copy
import hashlib
import hmac

import pytest
from energy_core import components, mongo_users, mongo_wire, names, plan, plan_checks, rules
from energy_core.masking import mask, secrets

from tests.unit.test_secrets import FLEET, PASSWORDS, containers


class Server:
    """Users and roles in ``admin``, as the commands ``ensure`` sends leave them."""

    def __init__(self, users=None, roles=None):
        self.users = users or {}  # name -> {"pwd", "roles"}
        self.roles = roles or {}  # name -> privileges
        self.indexes = {}
        self.sent = []

    def connect(self):
        return Connection(self)


class Connection:
    def __init__(self, server):
        self.server = server

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def authenticate(self, user, password, source):
        known = self.server.users.get(user)
        if user == "energy-admin" and password == PASSWORDS["admin_password"]:
            return
        if not known or known["pwd"] != password:
            raise mongo_wire.CommandError("authentication failed", 18)

    def command(self, database, doc, check=True):  # pylint: disable=unused-argument,too-many-return-statements
        name = next(iter(doc))
        self.server.sent.append(name)
        users, roles = self.server.users, self.server.roles
        if name == "listIndexes":
            return {"ok": 1, "cursor": {"firstBatch": self.server.indexes.get((database, doc[name]), [])}}
        if name == "createIndexes":
            self.server.indexes[(database, doc[name])] = doc["indexes"]
        elif name == "rolesInfo":
            wanted = [doc[name]["role"]] if isinstance(doc[name], dict) else list(roles)
            return {"ok": 1, "roles": [{"role": r, "db": "admin", "privileges": roles[r]} for r in wanted if r in roles]}
        elif name == "usersInfo":
            wanted = [doc[name]["user"]] if isinstance(doc[name], dict) else list(users)
            return {"ok": 1, "users": [{"user": u, "db": "admin", "roles": users[u]["roles"]} for u in wanted
                                       if u in users]}
        elif name in ("createRole", "updateRole"):
            roles[doc[name]] = doc["privileges"]
        elif name == "createUser":
            users[doc[name]] = {"pwd": doc["pwd"], "roles": doc["roles"]}
        elif name == "updateUser":
            users[doc[name]].update({k: doc[k] for k in ("pwd", "roles") if k in doc})
        elif name == "dropUser":
            del users[doc[name]]
        elif name == "dropRole":
            del roles[doc[name]]
        return {"ok": 1}


@pytest.fixture
def conf(defaults):
    conf = copy.deepcopy(defaults)
    conf["roles"].update(mongos=["db"], formulas=["fx"], influxdbs=["db"], grafana=["gr"])
    conf["grafana"]["admin_password"] = "grafana-admin-pw"
    conf["mongo"].update(PASSWORDS)
    return conf


def keep(server, users, test=False):
    admin = {"name": "energy-admin", "password": PASSWORDS["admin_password"]}
    return mongo_users.ensure(server.connect, admin, users, test=test)


def test_each_collection_has_its_users_with_rights_on_it_alone(conf):
    full_plan = plan.build(conf, FLEET)
    (mongo,) = containers(full_plan, "db", "mongo")
    users = {u["name"]: u for u in mongo["users"]["users"]}
    assert sorted(users) == ["energy-formula-x", "energy-sensor-x"]
    assert users["energy-sensor-x"]["collections"] == [["sensors_x", "hwpc"]]
    assert mongo_users.privileges(users["energy-sensor-x"]) == [
        {"resource": {"db": "sensors_x", "collection": "hwpc"}, "actions": ["insert"]}]
    assert mongo_users.privileges(users["energy-formula-x"]) == [
        {"resource": {"db": "sensors_x", "collection": "hwpc"}, "actions": ["find", "remove", "update"]}]
    # each password derived from the role's pillar password and the user's name, none equal to it
    expected = hmac.new(PASSWORDS["sensor_password"].encode(), b"energy-sensor-x", hashlib.sha256).hexdigest()
    assert users["energy-sensor-x"]["password"] == expected
    assert users["energy-formula-x"]["password"] not in PASSWORDS.values()
    # the sensor's config and the formula's URI use that collection's users
    (sensor,) = containers(full_plan, "s1", "sensor")
    uri = next(iter(sensor["files"].values()))["data"]["output"]["uri"]
    assert uri.startswith(f"mongodb://energy-sensor-x:{expected}@")
    (formula,) = containers(full_plan, "fx", "formula")
    assert "energy-formula-x:" + users["energy-formula-x"]["password"] in \
        formula["run"]["environment"]["POWERAPI_INPUT_PULLER_URI"]


def test_shards_get_users_of_their_own_collection():
    assert names.mongo_user("sensor", "sensors_intel_xeon", "hwpc") == "energy-sensor-intel_xeon"
    assert names.mongo_user("formula", "sensors_intel_xeon", "hwpc_2") == "energy-formula-intel_xeon-2"


def test_a_password_per_cpu_name_replaces_the_role_s_and_the_role_s_is_then_not_needed(conf):
    conf["mongo"]["sensor_passwords"] = {"X": "x-own-sensor-pw"}
    conf["mongo"]["sensor_password"] = ""
    full_plan = plan.build(conf, FLEET)
    (sensor,) = containers(full_plan, "s1", "sensor")
    uri = next(iter(sensor["files"].values()))["data"]["output"]["uri"]
    own = hmac.new(b"x-own-sensor-pw", b"energy-sensor-x", hashlib.sha256).hexdigest()
    assert f":{own}@" in uri
    # the sensor minion and the MongoDB host have what they need without energy:mongo:sensor_password
    plan_checks.check_secrets(conf, full_plan, "s1")
    plan_checks.check_secrets(conf, full_plan, "db")
    assert rules.mongo_base_password(conf, "sensor", "Y") == ("mongo:sensor_password", "")
    # the per-CPU password is a secret: masked, and held to the same rules as the others
    assert "x-own-sensor-pw" in secrets(conf)
    conf["mongo"]["sensor_passwords"] = {"X": "short"}
    assert ("mongo:sensor_passwords:X", "***") in [(k, v) for k, v, _fix in rules._given_secrets(conf)]  # pylint: disable=protected-access


def test_the_masked_plan_holds_no_derived_password(conf):
    full_plan = plan.build(conf, FLEET)
    derived = [u["password"] for u in containers(full_plan, "db", "mongo")[0]["users"]["users"]]
    text = repr(mask(full_plan, secrets(conf)))
    assert derived and not any(p in text for p in derived)


def test_ensure_makes_the_users_then_drops_the_shared_ones_of_the_earlier_layout(conf):
    users = containers(plan.build(conf, FLEET), "db", "mongo")[0]["users"]["users"]
    server = Server(users={"energy-sensor": {"pwd": "old", "roles": [{"role": "energy-sensor", "db": "admin"}]},
                           "energy-formula": {"pwd": "old", "roles": [{"role": "energy-formula", "db": "admin"}]},
                           "operator": {"pwd": "theirs", "roles": []}},
                    roles={"energy-sensor": [], "energy-formula": [], "operators-role": []})
    result, changes, _ = keep(server, users, test=True)  # test mode: said, not done
    assert result is None and changes["energy-sensor"] == ["user removed (the plan no longer has it)",
                                                           "role removed (the plan no longer has it)"]
    assert "energy-sensor" in server.users and "energy-sensor-x" not in server.users
    assert not {"createUser", "createRole", "dropUser", "dropRole", "updateUser"} & set(server.sent)
    result, changes, _ = keep(server, users)
    assert result is True and changes["energy-sensor-x"] == ["role created", "user created"]
    assert sorted(server.users) == ["energy-formula-x", "energy-sensor-x", "operator"]  # not the operator's
    assert sorted(server.roles) == ["energy-formula-x", "energy-sensor-x", "operators-role"]
    assert keep(server, users) == (True, {}, "energy-formula-x, energy-sensor-x: as the pillar wants")
    # a changed pillar password is set again, and never shown
    conf["mongo"]["sensor_password"] = "another-sensor-pw"
    users = containers(plan.build(conf, FLEET), "db", "mongo")[0]["users"]["users"]
    result, changes, comment = keep(server, users)
    assert changes == {"energy-sensor-x": ["password set from pillar"]}
    assert not any(u["password"] in repr((changes, comment)) for u in users)
    assert components.MONGO_PRIVILEGES["sensor"] == ["insert"]
