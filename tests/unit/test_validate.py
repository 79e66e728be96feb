"""Bad pillar gets an error naming the key, the value and the fix."""

import copy

import pytest
import yaml

from energy_core import schema as energy
from tests.conftest import ROOT


@pytest.fixture
def good(defaults):
    conf = copy.deepcopy(defaults)
    conf["control"] = "ctl"
    conf["grafana"]["admin_password"] = "correct horse"
    return conf


def test_defaults_with_a_control_minion_are_valid(good):
    assert energy.validate(good) == []


def test_the_default_smartwatts_is_the_release_the_end_to_end_test_runs(defaults):
    # what ships is what runs: the test image installs this very release from PyPI (upstream's
    # powerapi/smartwatts-formula:<release> image is built from the same package), with the same
    # InfluxDB major version and output
    wanted = (ROOT / "tests" / "images" / "smartwatts" / "requirements.txt").read_text().split()
    assert f"smartwatts=={defaults['formula']['tag']}" in wanted
    assert defaults["formula"]["image"] == "powerapi/smartwatts-formula"
    assert defaults["influxdb"]["version"] == 1 and defaults["influxdb"]["tag"].startswith("1.")
    assert "influxdb" in (ROOT / "tests" / "images" / "influxdb" / "Dockerfile").read_text()


def test_known_keys_are_the_keys_of_defaults_yaml(defaults):
    assert sorted(energy.KNOWN_KEYS) == sorted(defaults)


def paths_of(data, prefix=""):
    """The key paths of a YAML mapping, down to the schema's leaves."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and any(p.startswith(path + ":") for p in energy.key_paths()):
            yield from paths_of(value, path + ":")
        else:
            yield path


def test_defaults_yaml_holds_every_key_of_the_schema_and_no_other(defaults):
    assert sorted(paths_of(defaults)) == sorted(energy.key_paths())


def test_pillar_example_documents_every_key_of_the_schema():
    example = yaml.safe_load((ROOT / "pillar.example").read_text())["energy"]
    assert sorted(paths_of(example)) == sorted(energy.key_paths())


def test_pillar_example_is_valid(defaults):
    example = yaml.safe_load((ROOT / "pillar.example").read_text())["energy"]
    merged = energy.merge(defaults, example)
    assert energy.validate(merged) == []


def setp(conf, path, value):
    *parents, last = path.split(":")
    node = conf
    for key in parents:
        node = node[key]
    node[last] = value


BAD = [
    # (pillar key, bad value, words the message must contain)
    ("roles:monitors", "*", "unknown role"),
    ("roles:mongos", 42, "compound target"),
    ("roles:influxdbs", [], "non-empty list"),
    ("roles:formulas", ["ctl", 7], "non-empty list"),
    ("mongo:port", 70000, "1024 to 65535"),
    ("influxdb:port", "8086", "1024 to 65535"),
    ("grafana:port", True, "1024 to 65535"),
    ("mongo:image", "", "non-empty string"),
    ("formula:tag", 2.1, "Quote it"),
    ("sensors", {"image": "x"}, "unknown key"),
    ("sensor:frequency_ms", 0, "milliseconds"),
    ("restart_policy", "sometimes", "unless-stopped"),
    ("config_dir", "relative/dir", "absolute"),
    ("sensor:env", ["A=1"], "mapping"),
    ("facts:cpu_nmae", "Xeon", "unknown fact"),
    ("clean:purge_data", "yes", "true or false"),
    ("formula:cpu_error_threshold", -1, "positive"),
    ("control", ["ctl"], "string"),
    ("grafana:admin_password", "admin", "not 'admin'"),
    ("grafana:admin_password", "short-one", "12 characters or more"),
    ("mongo:sensor_password", "short-one", "12 characters or more"),
    ("mongo:admin_password", "with a space in it", "printable ASCII"),
    ("mongo:formula_password", 123456789012, "a string"),
    ("mongo:auth", "yes", "true or false"),
    ("heal:schedule:splay", float("nan"), "0 or more"),
    ("influxdb:version", 3, "1 (InfluxDB 1.x) or 2"),
    ("influxdb:retention", "30 days", "InfluxDB duration"),
    ("ready_timeout", 0, "positive number of seconds"),
    ("ping_timeout", "10s", "positive number of seconds"),
    ("heal:components", ["formula", "nginx"], "unknown component(s) nginx"),
    ("heal:components", "formula", "list of components"),
    ("heal:schedule:seconds", -5, "positive number of seconds"),
    ("heal:schedule:splay", -1, "0 or more"),
    ("heal:events:enabled", "yes", "true or false"),
    ("heal:events:restart_minion", None, "true or false"),
    ("heal:events:restart_master", "yes", "true or false"),
    ("heal:schedule:seconds", 0, "positive number of seconds"),
    ("heal:schedule:seconds", "60", "positive number of seconds"),
    ("heal:max_backlog", -1, "positive number"),
    # unknown keys one level down or more, with the nearest known key
    ("mongo:prot", 27017, "did you mean port?"),
    ("influxdb:retension", "30d", "did you mean retention?"),
    ("heal:schedule:second", 30, "did you mean seconds?"),
    ("heal:evnets", {}, "did you mean events?"),
    # types checked at every level
    ("facts:cpu_name", 42, "CPU model name as a string"),
    ("facts:rapl_domains", None, "list of RAPL domains"),
    ("facts:tdp_w", "high", "TDP in Watts"),
    ("facts:cgroup_version", 3, "1 or 2"),
    ("sensor:events", "CYCLES", "mapping of CPU names"),
    ("sensor:events", ["CYCLES"], "mapping of CPU names"),
    ("sensor:mode", "accurate", "best (each CPU name"),
    ("sensor:compare", "econome", "list of cluster names"),
    ("sensor:extra_events", ["LLC_MISSES"], "mapping of CPU names"),
    ("formula:extra_args", "--verbose", "list of arguments"),
    ("formula:verbose", "false", "true or false"),
    ("heal:timeout", float("inf"), "positive number"),
    ("restart_policy", "on-failure:x", "on-failure:N"),
    ("config_dir", "/etc/energy:rw", "without ':'"),
    ("config_dir", "/etc/my energy", "spaces"),
    ("influxdb:retention", "1s", "1h or more"),
    ("influxdb:retention", "59m", "1h or more"),
    ("mongo:env:MONGO_INITDB_ROOT_USERNAME", "root", "creates the root user itself"),
    ("mongo:port", 0, "1024 to 65535"),
    ("mongo:port", 65536, "1024 to 65535"),
    ("sensor:frequency_ms", 9, "at least 10"),
    ("sensor:frequency_ms", 500.5, "milliseconds"),
    ("sensor:events:*", [1, 2], "list of event names"),
    ("sensor:extra_events:*", ["CYCLES", ""], "list of event names"),
    ("sensor:options", "privileged", "mapping"),
    ("grafana:enabled", "yes", "true or false"),
    ("grafana:port", "3000", "1024 to 65535"),
    ("influxdb:org", 5, "organisation name"),
    ("facts:cpu_count", 0, "1 or more"),
    ("facts:virtual", "no", "true or false"),
    ("facts:address", "", "address other minions reach"),
    ("facts:pmu_events", "CYCLES", "list of core event names"),
    ("roles:sensors", "", "compound target"),
    ("roles:grafana", [""], "non-empty list"),
    ("heal:grace_seconds", "90", "positive number"),
    ("clean:purge", True, "did you mean purge_data?"),
]


@pytest.mark.parametrize("key,value,words", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_key_value_and_fix(good, key, value, words):
    setp(good, key, value)
    errors = energy.validate(good)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"energy:{key}: bad value")
    if energy.secret_path(key):  # nothing under a secret-looking key is echoed, even a bad value or a bool's typo
        assert "bad value '***'" in errors[0] and (value == "admin" or str(value) not in errors[0])
    else:
        assert repr(value) in errors[0] or f"'{value}'" in errors[0]
    assert "Fix:" in errors[0] and words in errors[0]


def test_there_are_at_least_60_bad_inputs_and_none_gives_a_traceback(good):
    assert len(BAD) >= 60
    for bad in (None, 42, "text", [], {"mongo": None}, {"heal": "on"}, {"roles": ["a"]}, {"facts": "x"},
                {"sensor": {"env": None, "options": None}}, {"influxdb": {"version": None}}):
        conf = good if not isinstance(bad, dict) else energy.merge(good, bad)
        errors = energy.validate(bad if not isinstance(bad, dict) else conf)
        assert all(isinstance(e, str) and "Fix:" in e for e in errors), errors


def test_missing_control_names_every_role_it_leaves_empty(defaults):
    errors = [e for e in energy.validate(copy.deepcopy(defaults)) if "admin_password" not in e]
    assert [e.split(":")[1] for e in errors] == ["roles"] * 4
    assert all("energy:control" in e for e in errors)


def test_check_raises_with_every_problem(good):
    good["mongo"]["port"] = 0
    good["bogus"] = 1
    with pytest.raises(energy.PlanError) as exc:
        energy.check(good)
    assert "energy:mongo:port" in str(exc.value) and "energy:bogus" in str(exc.value)


@pytest.mark.parametrize("version, tag, accepted", [
    (1, "2.1.2", True), (1, "v2.1.1", True), (1, "2.2.0", False), (1, "2.3.1", False), (1, "2.4.1", False),
    (2, "2.4.1", True), (2, "2.2.0", True), (2, "2.1.2", False), (2, "1.0.0", False),
    (1, "fd243071c022", True), (2, "latest", True),  # a local build or a moving tag: not a release to check
])
def test_smartwatts_release_must_fit_the_influxdb_version(good, version, tag, accepted):
    good["influxdb"].update(version=version, token="t0k3n-t0k3n-t0k3n", password="longenough")
    good["formula"]["tag"] = tag
    errors = energy.validate(good)
    if accepted:
        assert errors == []
    else:
        (error,) = errors
        assert error.startswith(f"energy:formula:tag: bad value '{tag}'") and "Fix:" in error
        assert ("2.1.2" if version == 1 else "2.2 or later") in error


def test_a_short_grafana_password_is_refused_without_being_echoed(good):
    good["grafana"]["admin_password"] = "s3cret-pw"
    (error,) = energy.validate(good)
    assert error.startswith("energy:grafana:admin_password: bad value '***'") and "12 characters or more" in error
    assert "s3cret-pw" not in error


@pytest.mark.parametrize("key, value", [("grafana:admin_pasword", "S3cretPassw0rd!!"), ("influxdb:token", 123456789),
                                        ("influxdb:tokn", "a-real-token-value")])
def test_a_value_under_a_secret_looking_key_is_never_echoed(good, key, value):
    setp(good, key, value)
    text = " ".join(energy.validate(good))
    assert f"energy:{key}: bad value '***'" in text and str(value) not in text


def test_short_values_are_not_masked_inside_other_words():
    assert energy.mask({"name": "energy-node-e"}, energy.secrets({"influxdb": {"token": "e"}})) == {"name": "energy-node-e"}
    assert energy.mask("pw=0123456789ab", energy.secrets({"grafana": {"admin_password": "0123456789ab"}})) == "pw=***"


def test_influxdb2_needs_its_org_everywhere_and_a_usable_password_where_given(good):
    good["influxdb"].update(version=2, org="")
    good["formula"]["tag"] = "2.4.1"
    assert [e.split(": bad")[0] for e in energy.validate(good)] == ["energy:influxdb:org"]
    good["influxdb"].update(org="lab", password="short")
    assert [e.split(": bad")[0] for e in energy.validate(good)] == ["energy:influxdb:password"]
    good["influxdb"].update(token="t0k3n-t0k3n-t0k3n", password="longenough")
    assert energy.validate(good) == []


def test_mongo_users_need_passwords_of_their_own(good):
    good["mongo"].update(admin_password="same-password-1", sensor_password="same-password-1")
    (error,) = energy.validate(good)
    assert error.startswith("energy:mongo:sensor_password: bad value '***'") and "energy:mongo:admin_password" in error
    assert "same-password-1" not in error
