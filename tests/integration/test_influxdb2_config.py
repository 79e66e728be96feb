"""The formula's InfluxDB 2.x configuration, checked by SmartWatts 2.4.1's own parser and validator.

No InfluxDB 2 server can run here, so this checks what can be checked for real: SmartWatts parses
the arguments the plan renders, validates them, and builds its influxdb2 pusher from them.
"""

import copy
import json

import pytest

from energy_core import components, plan, schema
from tests.integration.conftest import docker_client, mongo_user

CHECK = """
import json, sys
from smartwatts.__main__ import generate_smartwatts_parser
from smartwatts.cli import SmartWattsConfigValidator
from powerapi.cli.generator import PusherGenerator
sys.argv = ["smartwatts"] + json.loads(sys.argv[1])
config = generate_smartwatts_parser().parse()
SmartWattsConfigValidator().validate(config)
pushers = PusherGenerator().generate(config)
out = {name: {k: v for k, v in conf.items()} for name, conf in config["output"].items()}
print(json.dumps({"output": out, "input": config["input"], "pushers": sorted(pushers), "base_freq": config["cpu-base-freq"],
                  "dram_disabled": config["disable-dram-formula"]}, default=str))
"""


@pytest.fixture(scope="module")
def influxdb2_plan(defaults):
    conf = copy.deepcopy(defaults)
    conf.update(control="ctl")
    conf["influxdb"].update(version=2, org="lab", token="s3cr3t-token-value", password="longenough", image="influxdb",
                            tag="2.7.5")
    conf["grafana"]["admin_password"] = "not-admin-at-all"
    conf["mongo"].update(admin_password="mongo-admin-pw-1", sensor_password="mongo-sensor-pw-2",
                         formula_password="mongo-formula-pw-3")
    conf["formula"]["tag"] = "2.4.1"  # the release this test runs; 2.1 has no influxdb2 output
    assert schema.validate(conf) == []
    facts = {"sensors": {"n1": {"cpu_name": "AMD EPYC 7452 32-Core Processor", "cpu_base_freq_mhz": 2350,
                                "rapl_domains": ["package"], "pmu_events": ["CYCLES_NOT_IN_HALT"],
                                "address": "10.0.0.1"}},
             "mongos": {"ctl": {"address": "10.0.0.9"}}, "formulas": {"ctl": {}}, "influxdbs": {"ctl": {}},
             "grafana": {"ctl": {}}}
    return plan.build(conf, facts)


def test_smartwatts_parses_and_validates_the_influxdb2_output(influxdb2_plan, images):
    (formula,) = [c for c in influxdb2_plan["hosts"]["ctl"]["containers"] if c["component"] == "formula"]
    args = formula["run"]["command"]
    assert "s3cr3t-token-value" not in json.dumps(args) and "mongo-formula-pw-3" not in json.dumps(args)
    client = docker_client()
    # the token and the MongoDB URI reach SmartWatts by its environment (PowerAPI's POWERAPI_* variables)
    out = client.containers.run(images["smartwatts24"], entrypoint=["python3", "-c", CHECK, json.dumps(args)],
                                environment=formula["run"]["environment"], remove=True, network_mode="none")
    result = json.loads(out.decode().strip().splitlines()[-1])
    output = result["output"]["power"]
    assert output["type"] == "influxdb2"
    # one Docker engine here: SmartWatts reaches the InfluxDB by its container name, else its address
    assert output["uri"] in ("http://10.0.0.9", "http://energy-ctl-influxdb-amd_epyc_7452") and int(output["port"]) == 8086
    assert output["db"] == "power_amd_epyc_7452"
    assert output["org"] == "lab" and output["token"] == "s3cr3t-token-value"
    assert output["tags"] == "scope,socket"
    assert result["pushers"] == ["power"]
    puller = result["input"]["puller"]
    user, password = mongo_user("formula", "amd_epyc_7452", "mongo-formula-pw-3")  # its CPU name's own user
    assert puller["uri"] in (f"mongodb://{user}:{password}@10.0.0.9:27017/?authSource=admin",
                             f"mongodb://{user}:{password}@energy-ctl-mongo-amd_epyc_7452:27017/?authSource=admin")
    assert puller["db"] == "sensors_amd_epyc_7452" and puller["collection"] == "hwpc"
    assert float(result["base_freq"]) == 2350
    assert result["dram_disabled"] is True


def test_influxdb2_container_is_set_up_with_the_cpu_bucket(influxdb2_plan):
    (influx,) = [c for c in influxdb2_plan["hosts"]["ctl"]["containers"] if c["component"] == "influxdb"]
    env = influx["run"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert env["DOCKER_INFLUXDB_INIT_BUCKET"] == "power_amd_epyc_7452"
    assert env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] == "s3cr3t-token-value"
    assert influx["run"]["binds"] == [f"{influx['volume']}:/var/lib/influxdb2"]
    datasource = components.grafana_datasources({"influxdb": {"version": 2, "token": "s3cr3t-token-value"}},
                                                influxdb2_plan["datasources"])["datasources"][0]
    assert datasource["secureJsonData"] == {"httpHeaderValue1": "Token s3cr3t-token-value"}
