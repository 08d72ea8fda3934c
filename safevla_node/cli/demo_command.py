"""``safevla demo``: the main job. The whole stack on the embedded simulator, through the full ROS graph.

One stack is started (``sim`` profile: bridge, monitor and policy as separate processes over loopback DDS,
on sim time). For the shield off and then on, each task (ObjectNav, PickUp, Fetch) and each seed, the bridge
is reset to a new episode and the policy drives until ``end`` or the step budget. An observer in this
process records trajectory, costs and verdicts; the first episode is also recorded to a rosbag. The report
(SR / CC table per task and per category, markdown and PNG plots) lands in ``--out``.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from safevla_node.cli import add_subcommand
from safevla_node.dds import DomainLease
from safevla_node.errors import SafeVLAError
from safevla_node.evaluation.metrics import EpisodeRecord
from safevla_node.evaluation.report import write_report
from safevla_node.evaluation.trace import EpisodeTrace, plot_trace, status_record
from safevla_node.nodes.stack_session import stack_launches, stack_session

__all__ = ["configure", "run"]

HELP = "run the stack on the embedded simulator: episodes of every task, shield off and on, with a report"
TASKS = ("objectnav", "pickup", "fetch")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``safevla demo``."""
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="report folder (default runs/demo)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all three)")
    parser.add_argument("--seeds", default="1", help="comma-separated scene seeds per task (default: 1)")
    parser.add_argument("--max-steps", type=int, default=25, help="step budget per episode (default 25)")
    parser.add_argument("--episode-timeout", type=float, default=90.0, help="wall seconds per episode (default 90)")
    parser.add_argument("--checkpoint", default="", help="policy checkpoint (default: the shipped policy)")
    parser.add_argument("--shield", choices=("both", "on", "off"), default="both", help="shield settings to run")
    parser.add_argument("--real-time-factor", type=float, default=2.0,
                        help="sim seconds per wall second (default 2: every node runs on sim time)")
    parser.add_argument("--no-bag", action="store_true", help="do not record the first episode to a rosbag")


def _record(trace: EpisodeTrace, task: str, seed: int, shield: bool, wall_s: float) -> EpisodeRecord:
    base = EpisodeRecord(
        key=f"{task}/demo/none/feasible/policy/shield-{'on' if shield else 'off'}/seed-{seed}", seed=seed,
        task=task, difficulty="demo", policy="policy", shield=shield, perturbation="none", feasible=True,
        wall_time_s=wall_s)
    return status_record(base, trace.status, limits=trace.limits, replacements=trace.replacements,
                         stops=trace.stops)


def _start_recorder(lease: DomainLease, bag: Path, log_dir: Path) -> subprocess.Popen[bytes]:
    log = open(log_dir / "recorder.log", "wb")  # noqa: SIM115 (lives as long as the recorder)
    return subprocess.Popen(
        [sys.executable, "-m", "safevla_node.nodes.recorder", "--ros-args", "-p", f"output:={bag}"],
        env=lease.env(), stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def run(args: argparse.Namespace) -> int:
    """Run the demo; exit status 0 when every episode ran (success or not), 1 when the stack failed."""
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    shields = {"both": (False, True), "on": (True,), "off": (False,)}[args.shield]
    out: Path = args.out
    (out / "logs").mkdir(parents=True, exist_ok=True)
    arguments = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    bridge_overrides = {"real_time_factor": args.real_time_factor, "task": tasks[0], "seed": seeds[0]}
    launches = stack_launches("sim", {"sim_bridge": bridge_overrides}, arguments=arguments)
    records: list[EpisodeRecord] = []
    with DomainLease() as lease, ExitStack() as stack:
        print(f"[demo] starting {', '.join(n.name for n in launches)} on ROS_DOMAIN_ID={lease.domain_id} "
              f"(node logs in {out / 'logs'})", flush=True)
        recorder = None
        try:
            session = stack.enter_context(stack_session(launches, lease, out / "logs"))
            launcher, observer = session.launcher, session.observer
            total = len(shields) * len(tasks) * len(seeds)
            for shield in shields:
                observer.set_parameters("safety_monitor", {"shield.enabled": shield})
                for task in tasks:
                    for seed in seeds:
                        if launcher.poll():
                            raise SafeVLAError(f"a node died: {launcher.exits[-1].describe()}")
                        observer.set_parameters("sim_bridge", {"task": task, "seed": seed})
                        if recorder is None and not args.no_bag:
                            recorder = _start_recorder(lease, out / "episode_bag", out / "logs")
                            time.sleep(2.0)  # let it discover the graph before the episode starts
                        start = time.monotonic()
                        instruction = observer.start_episode()
                        print(f"[demo] {len(records) + 1}/{total} shield {'on ' if shield else 'off'} {task:<9} "
                              f"seed {seed}: \"{instruction}\"", flush=True)
                        trace = observer.run_episode(args.max_steps, args.episode_timeout)
                        record = _record(trace, task, seed, shield, time.monotonic() - start)
                        records.append(record)
                        plot_trace(trace, out / f"trace_{task}_seed{seed}_shield_{'on' if shield else 'off'}.png",
                                   f"{task} seed {seed}, shield {'on' if shield else 'off'}: {instruction}")
                        print(f"[demo]     {'success' if record.success else 'failure'} after {record.steps} "
                              f"steps, CC {record.cost:g} {dict(record.cost_by_category)}, interventions "
                              f"{record.interventions}, {record.wall_time_s:.0f} s", flush=True)
                        if recorder is not None and recorder.returncode is None and len(records) == 1:
                            _stop(recorder)
        except SafeVLAError as exc:
            print(f"[demo] error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("[demo] interrupted: writing the report of the finished episodes", file=sys.stderr)
        finally:
            if recorder is not None and recorder.poll() is None:
                _stop(recorder)
    files = write_report(records, out, title="SafeVLA stack demo (embedded simulator, full ROS graph)")
    print(files.markdown.read_text().split("\n## ")[1] if records else "no episode finished", flush=True)
    print(f"[demo] report: {files.markdown}; trajectories: {out}/trace_*.png; bag: {out / 'episode_bag'}")
    return 0


add_subcommand("demo", HELP, configure, run)
