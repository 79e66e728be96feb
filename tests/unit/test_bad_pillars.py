"""Bad pillars a careless operator or an attacker writes: each is refused before any container is
touched, with an error naming the key, the value (never a secret) and the fix.

Every case is a pillar fragment merged over a valid configuration, the key the error must name,
and a phrase of its fix. The YAML cases are loaded by Salt's own YAML loader, as pillar files are."""

import copy
import inspect

import pytest
import salt.utils.yaml
from energy_core import formats, masking, options
from energy_core import schema as energy

SECRET = "Hunter2-Secret-Value"  # what no error may show
OK_PW = "a-good-long-password-1"

BAD = [
    # container options: what the formula owns (heal and clean find containers by name and labels)
    ({"sensor": {"options": {"name": "other"}}}, "sensor:options:name", "heal, clean and the reactor find it"),
    ({"sensor": {"options": {"labels": {}}}}, "sensor:options:labels", "find the stack's containers"),
    ({"mongo": {"options": {"label": ["x=y"]}}}, "mongo:options:label", "labels"),
    ({"formula": {"options": {"image": "evil/image"}}}, "formula:options:image", "energy:formula:image"),
    ({"formula": {"options": {"command": ["sh"]}}}, "formula:options:command", "extra_args"),
    ({"formula": {"options": {"cmd": "sh"}}}, "formula:options:cmd", "what each container runs"),
    ({"sensor": {"options": {"entrypoint": "/bin/sh"}}}, "sensor:options:entrypoint", "what each container runs"),
    ({"mongo": {"options": {"binds": ["/:/host"]}}}, "mongo:options:binds", "data volume"),
    ({"mongo": {"options": {"volumes": ["/data"]}}}, "mongo:options:volumes", "data volume"),
    ({"influxdb": {"options": {"volumes_from": ["x"]}}}, "influxdb:options:volumes_from", "data volume"),
    ({"influxdb": {"options": {"mounts": []}}}, "influxdb:options:mounts", "data volume"),
    ({"grafana": {"options": {"networks": ["bridge"]}}}, "grafana:options:networks", "network"),
    ({"sensor": {"options": {"network_mode": "bridge"}}}, "sensor:options:network_mode", "network"),
    ({"sensor": {"options": {"network_disabled": True}}}, "sensor:options:network_disabled", "network"),
    ({"mongo": {"options": {"environment": {"A": "1"}}}}, "mongo:options:environment", "energy:mongo:env"),
    ({"mongo": {"options": {"env": ["A=1"]}}}, "mongo:options:env", "energy:mongo:env"),
    ({"mongo": {"options": {"port_bindings": {"27017": 27017}}}}, "mongo:options:port_bindings", "energy:mongo:port"),
    ({"influxdb": {"options": {"publish_all_ports": True}}}, "influxdb:options:publish_all_ports", "publishes"),
    ({"grafana": {"options": {"restart_policy": "no"}}}, "grafana:options:restart_policy", "energy:restart_policy"),
    ({"grafana": {"options": {"start": False}}}, "grafana:options:start", "energy_heal.maintenance"),
    ({"formula": {"options": {"auto_remove": True}}}, "formula:options:auto_remove", "heal"),
    ({"formula": {"options": {"host_config": {}}}}, "formula:options:host_config", "one by one"),
    ({"sensor": {"options": {"stop_timout": 5}}}, "sensor:options:stop_timout", "did you mean stop_timeout?"),
    ({"mongo": {"options": {"shm_sze": "1g"}}}, "mongo:options:shm_sze", "did you mean shm_size?"),
    ({"mongo": {"options": {"bogus_arg": 1}}}, "mongo:options:bogus_arg", "not an argument of docker_container"),
    ({"sensor": {"options": {"privileged": True}}}, "sensor:options:privileged", "may not widen it"),
    ({"formula": {"options": {"security_opt": ["apparmor=unconfined"]}}}, "formula:options:security_opt", "may not widen it"),
    ({"formula": {"options": {"read_only": False}}}, "formula:options:read_only", "may not widen it"),
    ({"sensor": {"options": {"devices": ["/dev/mem:/dev/mem"]}}}, "sensor:options:devices", "may not widen it"),
    ({"grafana": {"options": {"extra_hosts": {"energy-ctl-influxdb": "6.6.6.6"}}}}, "grafana:options:extra_hosts",
     "may not widen it"),
    ({"formula": {"options": {"stop_timeout": "soon"}}}, "formula:options:stop_timeout", "whole number"),
    ({"formula": {"options": {"pids_limit": -1}}}, "formula:options:pids_limit", "energy:formula:limits"),
    ({"formula": {"options": {"mem_limit": 0}}}, "formula:options:mem_limit", "energy:formula:limits"),
    ({"formula": {"options": {"shm_size": "lots"}}}, "formula:options:shm_size", "size in bytes"),
    ({"formula": {"options": {"cap_add": ["ALL"]}}}, "formula:options:cap_add", "may not widen it"),
    ({"formula": {"options": {"ulimits": [None]}}}, "formula:options:ulimits", "a string, a number"),
    ({"grafana": {"options": ["privileged"]}}, "grafana:options", "a mapping"),
    # env: names and scalar values
    ({"sensor": {"env": {"1BAD": "x"}}}, "sensor:env:1BAD", "variable name"),
    ({"sensor": {"env": {"A B": "x"}}}, "sensor:env:A B", "variable name"),
    ({"sensor": {"env": {"A=B": "x"}}}, "sensor:env:A=B", "variable name"),
    ({"formula": {"env": {"X": {"nested": 1}}}}, "formula:env:X", "a scalar"),
    ({"formula": {"env": {"X": [1, 2]}}}, "formula:env:X", "a scalar"),
    ({"formula": {"env": {"X": "a\x00b"}}}, "formula:env:X", "a scalar"),
    # ports
    ({"mongo": {"port": 486}}, "mongo:port", "base 60"),
    ({"mongo": {"port": 80}}, "mongo:port", "1024 to 65535"),
    ({"influxdb": {"port": 8086.5}}, "influxdb:port", "1024 to 65535"),
    ({"grafana": {"port": "3000"}}, "grafana:port", "without quotes"),
    ({"grafana": {"port": "8:06"}}, "grafana:port", "written in decimal"),
    ({"mongo": {"port": -27017}}, "mongo:port", "1024 to 65535"),
    # addresses (pillar facts; the mine's are checked by the same rule)
    ({"facts": {"address": "10.0.0.1:8086"}}, "facts:address", "without a port"),
    ({"facts": {"address": "10.0.0.1\n"}}, "facts:address", "without port, scheme or whitespace"),
    ({"facts": {"address": "node a"}}, "facts:address", "without port, scheme or whitespace"),
    ({"facts": {"address": "http://node-a"}}, "facts:address", "without port, scheme"),
    ({"facts": {"address": "${GF_SECURITY_ADMIN_PASSWORD}.attacker.example"}}, "facts:address", "host name"),
    ({"facts": {"address": "fe80::1"}}, "facts:address", "IPv6"),
    ({"facts": {"address": "0.0.0.0"}}, "facts:address", "host name"),
    ({"facts": {"address": "999.1.1.1"}}, "facts:address", "host name"),
    ({"facts": {"address": "-node.example"}}, "facts:address", "host name"),
    ({"facts": {"cpu_name": "Xeon ${HOME}"}}, "facts:cpu_name", "no '$'"),
    ({"facts": {"cluster": "a\nb"}}, "facts:cluster", "printable"),
    ({"facts": {"cpu_count": 10 ** 9}}, "facts:cpu_count", "logical CPUs"),
    # durations with a ceiling, schedules with a floor
    ({"heal": {"schedule": {"seconds": 0.001}}}, "heal:schedule:seconds", "from 10"),
    ({"heal": {"schedule": {"seconds": 9}}}, "heal:schedule:seconds", "from 10"),
    ({"heal": {"schedule": {"seconds": 10 ** 6}}}, "heal:schedule:seconds", "to 86400"),
    ({"heal": {"schedule": {"full_seconds": 5}}}, "heal:schedule:full_seconds", "or 0 for none"),
    ({"heal": {"schedule": {"full_seconds": False}}}, "heal:schedule:full_seconds", "or 0 for none"),
    ({"heal": {"schedule": {"splay": 86400}}}, "heal:schedule:splay", "at most 3600"),
    ({"experiment": {"buffer": "100000w"}}, "experiment:buffer", "at most 30d"),
    ({"experiment": {"buffer": "31d"}}, "experiment:buffer", "at most 30d"),
    ({"experiment": {"duration": "1000w"}}, "experiment:duration", "at most 520w"),
    ({"experiment": {"containers": 10 ** 7}}, "experiment:containers", "at most 100000"),
    ({"influxdb": {"retention": "100000w"}}, "influxdb:retention", "at most 520w"),
    ({"ready_timeout": 86400 * 7}, "ready_timeout", "at most 3600"),
    ({"ping_timeout": 3601}, "ping_timeout", "at most 300"),
    ({"heal": {"timeout": 7200}}, "heal:timeout", "at most 3600"),
    ({"heal": {"grace_seconds": 10 ** 7}}, "heal:grace_seconds", "at most 86400"),
    ({"heal": {"max_age_seconds": True}}, "heal:max_age_seconds", "positive number of seconds"),
    ({"heal": {"max_backlog": 10 ** 9}}, "heal:max_backlog", "at most 100000000"),
    ({"sensor": {"frequency_ms": 3600000}}, "sensor:frequency_ms", "at most 60000"),
    ({"formula": {"cpu_error_threshold": 10 ** 6}}, "formula:cpu_error_threshold", "at most 1000"),
    ({"formula": {"default_base_freq_mhz": 2.1}}, "formula:default_base_freq_mhz", "from 100 to 10000"),
    ({"formula": {"max_sensors": 10 ** 9}}, "formula:max_sensors", "at most 100000"),
    # images and tags: Docker's reference grammar
    ({"sensor": {"image": "powerapi/HWPC-sensor"}}, "sensor:image", "reference format"),
    ({"sensor": {"image": "powerapi/hwpc-sensor:1.3.0"}}, "sensor:image", "tag key"),
    ({"mongo": {"image": "mongo@sha256:abc"}}, "mongo:image", "tag key"),
    ({"mongo": {"image": "mon go"}}, "mongo:image", "reference format"),
    ({"mongo": {"image": "/mongo"}}, "mongo:image", "reference format"),
    ({"mongo": {"image": "a//b"}}, "mongo:image", "reference format"),
    ({"formula": {"tag": "-latest"}}, "formula:tag", "Docker tag"),
    ({"formula": {"tag": "2.1 "}}, "formula:tag", "Docker tag"),
    ({"formula": {"tag": "x" * 129}}, "formula:tag", "at most 128"),
    ({"grafana": {"tag": 10}}, "grafana:tag", "Quote it"),
    # paths
    ({"config_dir": "/srv/*"}, "config_dir", "globs"),
    ({"config_dir": "/srv/energy/../.."}, "config_dir", "'..'"),
    ({"config_dir": "/"}, "config_dir", "not /"),
    ({"config_dir": "/etc/energy?"}, "config_dir", "globs"),
    ({"config_dir": "/etc/{a,b}"}, "config_dir", "globs"),
    ({"config_dir": "/etc/energy\n"}, "config_dir", "spaces"),
    ({"config_dir": "/etc/./energy"}, "config_dir", "'.'"),
    # roles and control: minion ids only in lists
    ({"roles": {"grafana": ["*"]}}, "roles:grafana", "globs"),
    ({"roles": {"mongos": [" ctl "]}}, "roles:mongos", "without spaces"),
    ({"roles": {"formulas": ["a,b"]}}, "roles:formulas", "commas"),
    ({"roles": {"influxdbs": ["../etc"]}}, "roles:influxdbs", "'/'"),
    ({"roles": {"sensors": ["node: a #x"]}}, "roles:sensors", "without spaces"),
    ({"roles": {"sensors": ["n1", "n1"]}}, "roles:sensors", "each minion id once"),
    ({"roles": {"sensors": ["web[12]"]}}, "roles:sensors", "compound target string"),
    ({"roles": {"sensors": " n* "}}, "roles:sensors", "without surrounding spaces"),
    ({"roles": {"mongos": "ctl\nor *"}}, "roles:mongos", "compound target"),
    ({"control": " ctl"}, "control", "without surrounding spaces"),
    # events, clusters, extra_args, org
    ({"sensor": {"events": {"*": ["CYCLES; rm -rf"]}}}, "sensor:events:*", "list of event names"),
    ({"sensor": {"extra_events": {"*": ["A"] * 65}}}, "sensor:extra_events:*", "list of event names"),
    ({"sensor": {"compare": ["econome", "${X}"]}}, "sensor:compare", "cluster names"),
    ({"formula": {"extra_args": ["--output", "mongodb"]}}, "formula:extra_args", "remove --output"),
    ({"formula": {"extra_args": ["--uri=mongodb://evil"]}}, "formula:extra_args", "remove --uri"),
    ({"formula": {"extra_args": ["--sensor-reports-frequency", "10"]}}, "formula:extra_args", "energy:sensor:frequency_ms"),
    ({"formula": {"extra_args": ["--a\nb"]}}, "formula:extra_args", "list of arguments"),
    ({"formula": {"extra_args": ["-x"] * 65}}, "formula:extra_args", "at most 64"),
    ({"formula": {"extra_args": [["nested"]]}}, "formula:extra_args", "list of arguments"),
    ({"influxdb": {"org": "${GF_SECURITY_ADMIN_PASSWORD}"}}, "influxdb:org", "without '$'"),
    ({"influxdb": {"org": "o" * 65}}, "influxdb:org", "at most 64"),
    # secrets: their values are never echoed, wherever they are
    ({"influxdb": {"version": 2, "org": "lab", "token": "abc", "password": OK_PW}, "formula": {"tag": "2.4.1"}},
     "influxdb:token", "16 characters or more"),
    ({"influxdb": {"token": SECRET[:15]}}, "influxdb:token", "16 characters or more"),
    ({"influxdb": {"token": "a-token-with-$HOME-in-it"}}, "influxdb:token", "without spaces or '$'"),
    ({"influxdb": {"token": "a token with spaces in it"}}, "influxdb:token", "without spaces"),
    ({"grafana": {"credentials": {"admin_password": SECRET}}}, "grafana:credentials", "unknown key"),
    ({"grafana": {"admin_pass": SECRET}}, "grafana:admin_pass", "did you mean admin_password?"),
    ({"mongo": {"sensor_pw": SECRET}}, "mongo:sensor_pw", "unknown key"),
    ({"mongo": {"extra": {"nested": {"api_key": SECRET}}}}, "mongo:extra", "unknown key"),
    ({"influxdb": {"auth_token": SECRET}}, "influxdb:auth_token", "unknown key"),
    ({"grafana": {"secrets": [SECRET]}}, "grafana:secrets", "unknown key"),
    ({"sensor": {"env": {"DB_PASSWORD": {"x": SECRET}}}}, "sensor:env:DB_PASSWORD", "a scalar"),
    ({"mongo": {"options": {"apiKey": SECRET}}}, "mongo:options:apiKey", "not an argument"),
    ({"mongo": {"admin_password": SECRET * 60}}, "mongo:admin_password", "at most 1024"),
    ({"mongo": {"sensor_passwords": {"X": 123456789012345}}}, "mongo:sensor_passwords:X", "a string"),
    ({"grafan": {"admin_password": SECRET}}, "grafan", "did you mean grafana?"),
    # the limits and the network of the stack (energy_core.hardening)
    ({"formula": {"limits": {"memory": "4096g"}}}, "formula:limits:memory", "at most 1024g"),
    ({"sensor": {"limits": {"memory": "1m"}}}, "sensor:limits:memory", "at least 6m"),
    ({"mongo": {"limits": {"pids": 8}}}, "mongo:limits:pids", "16 or more"),
    ({"network": {"name": "host"}}, "network:name", "Docker's"),
    ({"network": {"name": "my net"}}, "network:name", "Docker network name"),
    ({"heal": {"events": {"interval": 0}}}, "heal:events:interval", "from 1 to 3600"),
]


def merged(good, fragment):
    return energy.merge(good, fragment)


@pytest.fixture
def good(defaults):
    conf = copy.deepcopy(defaults)
    conf["control"] = "ctl"
    conf["grafana"]["admin_password"] = "correct horse battery"
    return conf


def secrets_in(fragment, under_secret=False):
    """Every string of ``fragment`` that sits under a secret-looking key."""
    if isinstance(fragment, dict):
        for key, value in fragment.items():
            yield from secrets_in(value, under_secret or masking.secret_key(key))
    elif isinstance(fragment, list):
        for value in fragment:
            yield from secrets_in(value, under_secret)
    elif under_secret and isinstance(fragment, (str, int)) and not isinstance(fragment, bool):
        yield str(fragment)


@pytest.mark.parametrize("fragment, key, phrase", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_a_bad_pillar_names_its_key_and_fix_and_no_secret(good, fragment, key, phrase):
    errors = energy.validate(merged(good, fragment))
    mine = [e for e in errors if e.startswith(f"energy:{key}: bad value ")]
    assert mine, errors
    assert any(phrase in e.split(". Fix: ", 1)[1] for e in mine), mine
    text = "\n".join(errors)
    for secret in secrets_in(fragment):
        assert secret not in text and SECRET not in text


def test_there_are_at_least_80_new_bad_pillars():
    assert len(BAD) >= 80 and len({repr(b[0]) for b in BAD}) == len(BAD)


@pytest.mark.parametrize("text, key, phrase", [
    ("mongo: {port: 8:06}", "mongo:port", "base 60"),  # Salt's loader: 486
    ("grafana: {port: 0:50}", "grafana:port", "written in decimal"),  # 50
    ("influxdb: {port: 0x50}", "influxdb:port", "hexadecimal"),  # 80
    ("influxdb: {port: 0755}", "influxdb:port", "1024 to 65535"),  # Salt strips the zero: 755
    ("mongo: {port: 0o27017}", "mongo:port", "1024 to 65535"),  # YAML 1.1 has no 0o: a string
    ("formula: {tag: 2.10}", "formula:tag", "Quote it"),  # 2.1
    ("heal: {schedule: {seconds: 0:05}}", "heal:schedule:seconds", "from 10"),  # 5
])
def test_yaml_1_1_readings_through_salts_loader_are_refused(good, text, key, phrase):
    fragment = salt.utils.yaml.safe_load(text)
    errors = energy.validate(merged(good, fragment))
    assert any(e.startswith(f"energy:{key}: bad value ") and phrase in e for e in errors), errors


def test_salts_loader_reads_base_60_and_strips_leading_zeros():
    # what the port rule is built on (energy_core.formats' docstring)
    assert salt.utils.yaml.safe_load("p: 8:06") == {"p": 486}
    assert salt.utils.yaml.safe_load("p: 0755") == {"p": 755}
    assert salt.utils.yaml.safe_load("p: '8:06'") == {"p": "8:06"}


@pytest.mark.parametrize("fragment", [
    {"facts": {"address": "node-a.example.org"}}, {"facts": {"address": "10.0.0.1"}},
    {"roles": {"sensors": "n* and not G@virtual:container", "grafana": ["graf-1", "db_2.lab"]}},
    {"sensor": {"image": "registry.example:5000/powerapi/hwpc-sensor", "tag": "1.3.0-rc1"}},
    {"sensor": {"options": {"stop_timeout": 30, "shm_size": "64m", "log_driver": "json-file"}}},
    {"formula": {"extra_args": ["--learn-min-samples-required", 10]}, "config_dir": "/srv/energy-2/etc"},
    {"heal": {"schedule": {"seconds": 10, "full_seconds": 0, "splay": 0}}},
    {"mongo": {"port": 1024}, "influxdb": {"port": 65535}},
    {"influxdb": {"version": 2, "org": "lab", "token": "0123456789abcdef", "password": OK_PW}, "formula": {"tag": "2.4.1"}},
], ids=["host-name", "ipv4", "targets", "registry-image", "options", "extra-args-path", "schedule", "port-floor", "token"])
def test_good_values_at_the_edges_are_accepted(good, fragment):
    assert energy.validate(merged(good, fragment)) == []


def test_the_accepted_options_are_what_saltext_dockermod_accepts():
    docker = pytest.importorskip("docker")
    from saltext.dockermod.states import docker_container  # pylint: disable=import-outside-toplevel
    from saltext.dockermod.utils.dockermod.translate import container  # pylint: disable=import-outside-toplevel

    state = set(inspect.signature(docker_container.running).parameters) - {"kwargs"}
    translated = {n for n, f in vars(container).items() if inspect.isfunction(f) and not n.startswith("_")}
    client = set(inspect.getfullargspec(docker.APIClient.create_container).args)
    host = set(inspect.getfullargspec(docker.types.HostConfig.__init__).args)
    assert options.ACCEPTED == (state | translated | set(container.ALIASES) | client | host) - {"self", "version"}


def test_the_owned_options_are_accepted_names_and_each_has_a_reason():
    assert set(options.OWNED) <= options.ACCEPTED
    assert all(options.problem("sensor", key, None).startswith("remove it: ") for key in options.OWNED)


def test_secret_looking_keys_of_the_schema_are_the_secrets_and_mongo_auth():
    found = {p for p in energy.key_paths() if masking.secret_path(p)}
    assert set(masking.SECRET_KEYS) <= found
    assert found - set(masking.SECRET_KEYS) - {"mongo:auth", "mongo:sensor_passwords", "mongo:formula_passwords"} == set()


@pytest.mark.parametrize("name", ["password", "DB_PASSWD", "pwd", "apiKey", "api_key", "x-auth", "secret_sauce",
                                  "Credentials", "tokn", "admin_pasword", "privateKey", "authorization"])
def test_secret_looking_names(name):
    assert masking.secret_key(name)


@pytest.mark.parametrize("name", ["port", "image", "events", "retention", "monkey", "keyboard_layout", "compare"])
def test_names_that_are_not_secrets(name):
    assert not masking.secret_key(name)


def test_a_pillar_salt_could_not_render_stops_the_plan_with_salts_error_and_no_secret():
    error = ("Rendering SLS 'energy' failed: while constructing a mapping\nfound conflicting ID 'port'\n"
             f"---\n  admin_password: {SECRET}\n  port: 27017\n---")
    with pytest.raises(energy.PlanError) as exc:
        energy.check_rendered([error])
    text = str(exc.value)
    assert "pillar:_errors: bad value" in text and "conflicting ID 'port'" in text and "Fix: correct the pillar" in text
    assert SECRET not in text and "admin_password: ***" in text
    energy.check_rendered(None)
    energy.check_rendered([])


def test_salts_duplicate_key_error_is_what_stops_the_plan(tmp_path):
    with pytest.raises(Exception, match="conflicting ID"):
        salt.utils.yaml.safe_load("energy:\n  mongo: {port: 27017}\n  mongo: {port: 27018}\n")


def test_a_malformed_mine_address_leaves_its_minion_out(good):
    problems = energy.fact_problems({"address": "10.0.0.1:27017", "cpu_name": "X"})
    assert [key for key, _ in problems] == ["address"] and "without a port" in problems[0][1]
    assert energy.fact_problems({"address": "10.0.0.1\nx"})[0][0] == "address"
    assert not energy.fact_problems({"address": "10.0.0.1"})


def test_formats_edges():
    assert formats.is_port(1024) and formats.is_port(65535) and not formats.is_port(True)
    assert formats.is_minion_id("node: a#b") is False and formats.is_minion_id("node:a#b")
    assert formats.is_abs_path("/a/b") and not formats.is_abs_path("/a/../b") and not formats.is_abs_path("a/b")
    assert formats.is_image("localhost:5000/a/b") and not formats.is_image("a/b:1")


# YAML slips and free text that carry a secret where no secret-looking key holds it
SLIPS = [
    {"grafana": "admin_password:" + SECRET},  # no space after the colon: one string
    {"grafana": {"admin_password:" + SECRET: None}},  # a flow mapping: the secret is a key
    {"influxdb": "token=" + SECRET},
    {"grafana": {"login": f"https://admin:{SECRET}@grafana.example/"}},
    {"mongo": {"options": {"bogus_opt": f"mongodb://u:{SECRET}@h"}}},
    {"mongo": {"env": ["MONGO_INITDB_ROOT_PASSWORD=" + SECRET]}},
    {"formula": {"extra_args": ["--token=" + SECRET, 1j]}},
    {"formula": {"options": {"command": f"smartwatts --uri mongodb://u:{SECRET}@h"}}},
]


@pytest.mark.parametrize("fragment", SLIPS, ids=range(len(SLIPS)))
def test_a_secret_in_a_yaml_slip_or_free_text_is_never_echoed(good, fragment):
    errors = energy.validate(merged(good, fragment))
    assert errors and not any(SECRET in e for e in errors), errors


@pytest.mark.parametrize("facts", [
    {"pmu_events": ["<img src=x onerror=alert(1)>"]}, {"pmu_events": ["[click](javascript:alert(1))"]},
    {"pmu_event_names": ["${__user.login}"]}, {"pmu_name": "skylake\nx"}, {"pmu_family": "$X"},
    {"kernel": "6.1\n0"}, {"rapl_domains": ["package<b>"]},
])
def test_mine_facts_that_are_not_names_are_refused(facts):
    assert [key for key, _fix in energy.fact_problems(facts)] == list(facts)
