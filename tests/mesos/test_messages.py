"""The v1 JSON messages: FrameworkInfo, TaskInfo, and taking resources from offers."""

from __future__ import annotations

from sightlines.mesos import MesosConfig, TaskSpec
from sightlines.mesos._messages import (
    agent_base_url,
    framework_info,
    sandbox_virtual_path,
    summarize_offer,
    take_resources,
    task_info,
)


def scalar(name, value, **extra):
    return {"name": name, "type": "SCALAR", "scalar": {"value": value}, **extra}


def offer(*resources, hostname="agent-a"):
    return {"id": {"value": "O1"}, "agent_id": {"value": "S1"}, "hostname": hostname, "resources": list(resources)}


def test_framework_info_is_partition_aware_and_failover_ready():
    config = MesosConfig(master="http://m:5050", principal="sl", secret="s", role="batch", user="svc",
                         failover_timeout=3600)
    info = framework_info(config, "sightlines:t1", framework_id="F1", task_id="t1")
    assert info["id"] == {"value": "F1"} and info["name"] == "sightlines:t1"
    assert info["roles"] == ["batch"] and info["principal"] == "sl" and info["user"] == "svc"
    assert info["failover_timeout"] == 3600.0 and info["checkpoint"] is True
    assert {"type": "PARTITION_AWARE"} in info["capabilities"] and {"type": "MULTI_ROLE"} in info["capabilities"]
    assert "secret" not in info  # the secret only goes in the Authorization header


def test_task_info_shell_env_labels_docker_kill_policy():
    spec = TaskSpec(task_id="t1", command="echo $X", env={"X": "1"}, labels={"client": "acme"},
                    docker_image="img:1", docker_force_pull=True)
    info = task_info(spec, "S1", [scalar("cpus", 1)], kill_grace_period=2.5)
    assert info["command"] == {"shell": True, "value": "echo $X",
                               "environment": {"variables": [{"name": "X", "value": "1"}]}}
    assert info["labels"] == {"labels": [{"key": "client", "value": "acme"}]}
    assert info["container"]["docker"] == {"image": "img:1", "network": "HOST", "force_pull_image": True}
    assert info["kill_policy"] == {"grace_period": {"nanoseconds": 2_500_000_000}}
    argv = task_info(TaskSpec(task_id="t2", command=["python", "-m", "x"]), "S1", [])["command"]
    assert argv == {"shell": False, "value": "python", "arguments": ["python", "-m", "x"]}


def test_take_resources_fits_and_cuts_amounts():
    o = offer(scalar("cpus", 4), scalar("mem", 8192), scalar("disk", 1000), scalar("gpus", 1))
    taken = take_resources(o, {"cpus": 1.5, "mem": 1024}, "*")
    assert taken == [scalar("cpus", 1.5), scalar("mem", 1024.0)]
    assert take_resources(o, {"cpus": 5}, "*") is None


def test_take_resources_keeps_reservations_and_respects_allocation_role():
    reserved = scalar("cpus", 1, reservations=[{"type": "DYNAMIC", "role": "batch"}],
                      allocation_info={"role": "batch"})
    unreserved = scalar("cpus", 2, role="*", allocation_info={"role": "batch"})
    other_role = scalar("mem", 4096, allocation_info={"role": "web"})
    mine = scalar("mem", 512, allocation_info={"role": "batch"})
    o = offer(reserved, unreserved, other_role, mine)
    taken = take_resources(o, {"cpus": 2, "mem": 512}, "batch")
    assert taken == [reserved, {**unreserved, "scalar": {"value": 1.0}}, mine]
    assert take_resources(o, {"mem": 1024}, "batch") is None  # the 'web' memory is not ours


def test_take_resources_skips_volumes_and_revocable():
    o = offer(scalar("disk", 5000, disk={"persistence": {"id": "v1"}}), scalar("cpus", 8, revocable={}))
    assert take_resources(o, {"disk": 100}, "*") is None
    assert take_resources(o, {"cpus": 1}, "*") is None


def test_offer_summary_closeness_and_description():
    small = summarize_offer(offer(scalar("cpus", 2), scalar("mem", 1024), hostname="b"), "*")
    assert small.scalars == {"cpus": 2.0, "mem": 1024.0}
    assert not small.fits({"cpus": 4, "mem": 512})
    assert small.closeness({"cpus": 4, "mem": 512}) == 0.5
    assert small.describe() == "cpus=2 mem=1024 disk=0 on b"


def test_sandbox_and_agent_urls():
    assert sandbox_virtual_path("F1", "t1") == "/frameworks/F1/executors/t1/runs/latest"
    assert agent_base_url({"pid": "slave(1)@10.0.0.5:5051", "agent_info": {"hostname": "a"}}, "https") \
        == "https://10.0.0.5:5051"
    assert agent_base_url({"agent_info": {"hostname": "a", "port": 5052}}, "http") == "http://a:5052"
    assert agent_base_url({}, "http") is None
