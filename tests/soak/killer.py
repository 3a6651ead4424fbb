#!/usr/bin/env python3
"""Runs a sweep and kills some of its runs at random (tests/soak/soak.sh, part 3).

  killer.py CLI SWEEP_TOML RUNS_DIR KILLED_OUT

While `megalodon sweep` works, every few seconds one of its running `megalodon train` children is
killed with SIGKILL (at most 8 kills); the run directories of the killed runs are written to
KILLED_OUT. Then the same sweep command is run again until it reports every run finished (at most
5 rounds): finished runs are skipped, interrupted ones resumed.
"""
import os
import random
import signal
import subprocess
import sys
import time


def train_children(sweep_pid):
    """(pid, run_dir) of the `megalodon train` processes under the sweep."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = open(f"/proc/{pid}/stat").read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != sweep_pid:
                continue
            args = open(f"/proc/{pid}/cmdline").read().split("\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if "train" in args:
            run = next((a.split("=", 1)[1] for a in args if a.startswith("run.dir=")), None)
            out.append((int(pid), run))
    return out


def main():
    cli, sweep, runs, killed_out = sys.argv[1:5]
    rng = random.Random(23)
    killed = []
    t0 = time.time()
    with open(os.path.join(os.path.dirname(killed_out), "sweep.log"), "w") as log:
        p = subprocess.Popen([cli, "sweep", sweep], stdout=log, stderr=subprocess.STDOUT)
        while p.poll() is None:
            time.sleep(rng.uniform(2.0, 6.0))
            kids = train_children(p.pid)
            if kids and len(killed) < 8:
                pid, run = rng.choice(kids)
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(run or f"pid {pid}")
                    print(f"  killed a run after {time.time() - t0:.0f} s: {run}", flush=True)
                except ProcessLookupError:
                    pass
        print(f"  first sweep pass ended with status {p.returncode} after {time.time() - t0:.0f} s", flush=True)
        for round_ in range(5):
            r = subprocess.run([cli, "sweep", sweep], stdout=log, stderr=subprocess.STDOUT)
            print(f"  re-run {round_ + 1}: status {r.returncode} after {time.time() - t0:.0f} s", flush=True)
            if r.returncode == 0:
                break
    with open(killed_out, "w") as f:
        f.write("\n".join(k for k in killed if not k.startswith("pid")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
