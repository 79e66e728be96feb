"""What moved from the energy module into the core: the room check of new volumes, the sizing
report, and one container as energy_inventory.live shows it."""

from energy_core import inventory, sizing

MIB = 2**20


def test_new_volumes_that_do_not_fit_name_the_host_the_need_and_the_fix():
    asked = []

    def root():
        asked.append(1)
        return "/var/lib/docker", 50 * MIB

    sizes = {"v-old": 500 * MIB, "v-new": 100 * MIB}
    assert sizing.space_problem("ctl", sizes, {"v-old", "v-new"}, root) is None and not asked  # nothing new
    problem = sizing.space_problem("ctl", sizes, {"v-old"}, root)
    assert problem.startswith("energy:experiment: ctl needs 100.0 MiB for its new database volumes (v-new 100.0 MiB)")
    assert "/var/lib/docker has 50.0 MiB free" in problem and "check_space: false" in problem
    assert sizing.space_problem("ctl", {"v": MIB}, set(), lambda: ("/d", 2 * MIB)) is None


def test_sizes_print_in_one_unit():
    assert [sizing.human(n) for n in (None, 512, 2048, 3 * MIB)] == ["-", "512 B", "2.0 KiB", "3.0 MiB"]


def test_a_live_container_shows_its_address_volume_and_hold():
    entry = {"name": "energy-a-influxdb-x", "component": "influxdb", "cpu": "X"}
    info = {"State": {"Status": "running"},
            "NetworkSettings": {"Ports": {"8086/tcp": [{"HostIp": "", "HostPort": "8086"}], "8088/tcp": None}},
            "Mounts": [{"Type": "bind", "Source": "/etc"}, {"Type": "volume", "Name": "vol", "Source": "/v"}]}
    row = inventory.live(entry, info, {"status": "healthy"}, "", lambda path: 42 if path == "/v" else None)
    assert row == {"name": "energy-a-influxdb-x", "component": "influxdb", "cpu": "X", "state": "running",
                   "health": {"status": "healthy"}, "maintenance": None, "published": "0.0.0.0:8086",
                   "volume": "vol", "volume_bytes": 42}
    assert inventory.live(entry, {}, None, "maintenance on all", None)["maintenance"] == "maintenance on all"
