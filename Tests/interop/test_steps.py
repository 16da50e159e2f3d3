"""`boxcar steps` and boxcar.v1 QueryStepCosts: what each training step cost the GPU, from a run
whose GPU (the fake NVML library) is scripted to be capped, drawing less power, during known
seconds of it. Steps a second long are logged on whole seconds; the cap holds from the 4th to
the 8th. The GPU's energy and violation counters are read as each step begins, so each step's
energy and throttled share are asserted against the reads' own stamps, the steps at the cap's
edges too."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time

import grpc

from conftest import agent_binary, running_agent
from boxcar import Boxcar
from boxcar._proto.boxcar.v1 import agent_pb2, agent_pb2_grpc

STEPS = 12


def test_steps_under_a_power_cap_cost_less_energy_and_say_they_were_throttled(tmp_path):
    start = math.ceil(time.time()) + 3  # the first step, on a whole second
    library = tmp_path / "libnvidia-ml.so.1"
    shutil.copy(agent_binary().parent / "libFakeNVML.so", library)
    (tmp_path / "libnvidia-ml.so.1.script").write_text(
        "gpus 1\n0 power 300000\n0 power.limit 700000\n0 utilization.gpu 90\n0 clocks_event_reasons 0\n"
        # The energy counter rises by the power, as a real one does: the agent reads it as each
        # step begins.
        "0 energy 5000000\n0 energy.integrates 1\n"
        # So do its violation counters, while the reasons below hold the clocks.
        "0 violation.integrates 1\n"
        # sw_power_cap (0x4) at 200 W from the 4th second to the 8th.
        f"0 clocks_event_reasons 4 {start + 4} {start + 8}\n0 power 200000 {start + 4} {start + 8}\n")
    with running_agent(tmp_path, "--nvml-library", str(library)) as agent:
        with Boxcar(str(agent.socket)) as mbox:
            with mbox.new_experiment(name="capped", namespace="steps") as experiment:
                for step in range(STEPS + 1):
                    time.sleep(max(0.0, start + step - time.time()))
                    experiment.log_metrics({"loss": 1 / (step + 1)}, step=step)
                    if step == 0:
                        experiment.log_metrics({"lr": 0.1}, step=step)  # fewer points: not the step key
                # The machine's ticks past the last step.
                end_ns = (start + STEPS) * 1_000_000_000
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    power = [points for key, points in experiment.metrics().items() if key.startswith("system/hw.power{")]
                    if power and power[0][-1].wallclock_time > end_ns + 1_000_000_000:
                        break
                    time.sleep(0.2)
                run = experiment.id
                energy_marks = next(points for key, points in experiment.metrics().items()
                                    if key.startswith("system/step/hw.energy{"))

        result = subprocess.run([str(agent_binary()), "steps", run, "--json", "--socket", str(agent.socket)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        costs = json.loads(result.stdout)
        channel = grpc.insecure_channel(agent.target)
        answer = agent_pb2_grpc.AgentStub(channel).QueryStepCosts(agent_pb2.QueryStepCostsRequest(experiment_id=run), timeout=30)
        channel.close()

        table = subprocess.run([str(agent_binary()), "steps", run, "--socket", str(agent.socket)],
                               capture_output=True, text=True, timeout=60)
        csv = subprocess.run([str(agent_binary()), "steps", run, "--csv", "--key", "loss", "--db", str(agent.db)],
                             capture_output=True, text=True, timeout=60)

    assert costs["key"] == "loss"  # its key with the most points
    steps = {step["step"]: step for step in costs["steps"]}
    assert sorted(steps) == list(range(1, STEPS + 1))
    # Energy and throttling from the counters read at each step's first point; the rest from the
    # ticks.
    assert set(costs["interpolated"]) == {"gpu_utilization", "gpu_memory_peak_bytes", "iowait", "cpu"}
    marks = {point.step: point.wallclock_time / 1e9 for point in energy_marks}
    # Step n filled the time between the reads at steps n-1 and n: its share under the cap is that
    # interval's overlap with the cap's seconds, the steps at the cap's edges (4 and 8) too, to 2 %
    # of the step (a read is stamped just before the counters are read).
    for n in range(1, STEPS + 1):
        begin, end = marks[n - 1], marks[n]
        overlap = max(0.0, min(end, start + 8) - max(begin, start + 4)) / (end - begin)
        assert abs(steps[n]["throttled"] - overlap) < 0.02, (n, steps[n], overlap)
    for n in (5, 6, 7):
        assert steps[n]["throttled"] > 0.97, steps[n]
    for n in (1, 2, 3, 10, 11, 12):
        assert steps[n]["throttled"] < 0.03, steps[n]
    # Energy from the counter read as each step's first point arrived: the power times the time
    # between the two reads' stamps, to 2 % (a read is stamped just before the counter is read; a
    # loaded machine may put milliseconds between them).
    for n, watts in [(5, 200), (6, 200), (1, 300), (2, 300), (9, 300), (10, 300), (11, 300), (12, 300)]:
        expected = watts * (marks[n] - marks[n - 1])
        assert abs(steps[n]["energy_joules"] - expected) < 0.02 * expected, (steps[n], expected)
    assert all(abs(step["seconds"] - 1) < 0.5 for step in steps.values())
    assert all(abs(step["gpu_utilization"] - 0.9) < 1e-9 for step in steps.values())
    assert all(step["cpu"] is not None and step["iowait"] is not None for step in steps.values())
    # 4 seconds of the 12 under the cap.
    assert abs(costs["throttled_share"] - 4 / 12) < 0.02
    assert 200 <= costs["joules_per_step"] <= 300
    assert abs(costs["steps_per_kilowatt_hour"] - 3_600_000 / costs["joules_per_step"]) < 1e-6

    # The API answers the same.
    assert answer.key == "loss" and [s.step for s in answer.steps] == sorted(steps)
    for cost in answer.steps:
        assert cost.HasField("energy_joules") and abs(cost.energy_joules - steps[cost.step]["energy_joules"]) < 1e-9
        assert abs(cost.throttled - steps[cost.step]["throttled"]) < 1e-9
    assert abs(answer.joules_per_step - costs["joules_per_step"]) < 1e-9

    # For people: a row a step and the summary; CSV from the database file alike.
    assert table.returncode == 0, table.stderr
    assert "STEP" in table.stdout and "J a step" in table.stdout and "steps a kWh" in table.stdout
    assert "interpolated from the sampler's ticks: gpu_utilization" in table.stdout and "throttled" not in table.stdout.split("interpolated")[1]
    assert csv.returncode == 0, csv.stderr
    rows = csv.stdout.splitlines()
    assert rows[0] == "step,start,end,seconds,energy_joules,gpu_utilization,throttled,gpu_memory_peak_bytes,iowait,cpu"
    assert len(rows) == STEPS + 1 and float(rows[5].split(",")[6]) > 0.97  # step 5: throttled


def test_a_run_without_the_key_or_any_metric_is_a_clear_error(agent):
    with Boxcar(str(agent.socket)) as mbox:
        with mbox.new_experiment(name="empty", namespace="steps", attach=False) as experiment:
            run = experiment.id
    result = subprocess.run([str(agent_binary()), "steps", run, "--socket", str(agent.socket)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "has no metric of its own to mark its steps" in result.stderr
    result = subprocess.run([str(agent_binary()), "steps", run, "--key", "loss", "--socket", str(agent.socket)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "has no metric loss" in result.stderr
