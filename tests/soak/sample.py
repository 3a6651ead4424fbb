#!/usr/bin/env python3
"""Samplers and checks for tests/soak/soak.sh.

  sample.py PID OUT              sample VmRSS, RssAnon and RssFile (kB), open descriptors and threads of
                                 PID every second
  sample.py --report OUT TITLE   print the figures; fail on > 2 % growth of the process's own memory
                                 (RssAnon: heap, stacks, anonymous maps) after warm-up (the first 10 % of
                                 the samples) or on more descriptors / threads at the end than then.
                                 VmRSS also counts the pages of mapped files the process has touched
                                 (the token cache is mmap'd: reading 10 M tokens touches 20 MB of it);
                                 those are the kernel's page cache, reclaimable, and reported apart.
  sample.py --check-sweep RUNS KILLED STEPS LOG_EVERY
                                 every run finished with intact results (its training lines are the
                                 steps LOG_EVERY, 2·LOG_EVERY, ..., STEPS, each once); every killed run
                                 resumed
"""
import json
import os
import sys
import time


def sample(pid, out):
    with open(out, "w") as f:
        t0 = time.time()
        while True:
            try:
                status = open(f"/proc/{pid}/status").read()
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except (FileNotFoundError, ProcessLookupError):
                return 0
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            if fields.get("State", "").strip().startswith("Z"):
                return 0
            rss = int(fields["VmRSS"].split()[0])
            anon = int(fields.get("RssAnon", fields["VmRSS"]).split()[0])
            mapped = int(fields.get("RssFile", "0 kB").split()[0])
            threads = int(fields["Threads"])
            f.write(f"{time.time() - t0:.1f} {rss} {fds} {threads} {anon} {mapped}\n")
            f.flush()
            time.sleep(1.0)


def report(path, title):
    rows = [list(map(float, line.split())) for line in open(path) if line.strip()]
    if len(rows) < 10:
        print(f"  {title}: only {len(rows)} samples (ran {rows[-1][0] if rows else 0:.0f} s): too short to judge")
        return 1
    warm = max(1, len(rows) // 10)
    after = rows[warm:]
    rss_warm, rss_end, rss_max = after[0][1], rows[-1][1], max(r[1] for r in after)
    rss_growth = (rss_max - rss_warm) / rss_warm * 100
    # The process's own memory: RssAnon (older sample files have VmRSS only).
    own = [(r[4] if len(r) > 5 else r[1]) for r in rows]
    own_after = own[warm:]
    own_warm, own_end, own_max = own_after[0], own[-1], max(own_after)
    growth = (own_max - own_warm) / own_warm * 100
    files = [r[5] for r in rows if len(r) > 5]
    fd_warm, fd_end, fd_max = after[0][2], rows[-1][2], max(r[2] for r in after)
    th_warm, th_end, th_max = after[0][3], rows[-1][3], max(r[3] for r in after)
    print(f"  {title}: {len(rows)} samples over {rows[-1][0]:.0f} s; own memory (RssAnon) after warm-up "
          f"{own_warm / 1024:.1f} MiB, max {own_max / 1024:.1f} MiB, at the end {own_end / 1024:.1f} MiB: growth "
          f"{growth:+.2f} % (limit 2 %); VmRSS {rss_warm / 1024:.1f} -> max {rss_max / 1024:.1f} MiB ({rss_growth:+.2f} %)"
          + (f", of it mapped files {files[warm] / 1024:.1f} -> max {max(files[warm:]) / 1024:.1f} MiB" if files else "")
          + f"; descriptors {fd_warm:.0f} -> max {fd_max:.0f}, end {fd_end:.0f}; threads {th_warm:.0f} -> max "
          f"{th_max:.0f}, end {th_end:.0f}")
    ok = growth <= 2.0 and fd_end <= fd_warm and th_end <= th_warm
    if not ok:
        print(f"  {title}: FAILED")
    return 0 if ok else 1


def check_sweep(runs, killed_file, steps, log_every):
    expected = list(range(log_every, steps + 1, log_every))
    killed = [line.strip() for line in open(killed_file) if line.strip()]
    finals = []
    for root, _, files in os.walk(runs):
        if "final.json" in files:
            finals.append(root)
    bad = []
    seeds = 0
    for root, _, files in os.walk(runs):
        if "config.toml" not in files:
            continue
        seeds += 1
        try:
            final = json.load(open(os.path.join(root, "final.json")))
        except Exception as e:  # noqa: BLE001 - any failure to read is a finding
            bad.append(f"{root}: final.json unreadable ({e})")
            continue
        if final.get("status") not in ("finished", "stopped_early"):
            bad.append(f"{root}: status {final.get('status')}")
        train_steps = []
        for line in open(os.path.join(root, "metrics.jsonl")):
            j = json.loads(line)
            if j.get("split") == "train":
                train_steps.append(j["step"])
        if train_steps != expected:
            bad.append(f"{root}: training lines in metrics.jsonl are for steps {train_steps}, not "
                       f"{log_every}, {2 * log_every}, ..., {steps} once each")
    resumed = 0
    for k in killed:
        log = open(os.path.join(k, "log.txt")).read() if os.path.exists(os.path.join(k, "log.txt")) else ""
        if "resumed at step" in log:
            resumed += 1
        elif os.path.exists(os.path.join(k, "final.json")):
            # Killed before its first checkpoint: it restarts from scratch, which is a resume from nothing.
            resumed += 1
        else:
            bad.append(f"{k}: killed but not resumed")
    print(f"  sweep: {seeds} runs, {len(finals)} finished; {len(killed)} kills, {resumed} resumed; "
          f"{len(bad)} problems")
    for b in bad:
        print(f"    {b}")
    return 0 if (not bad and len(finals) == 20 and seeds == 20) else 1


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        sys.exit(report(sys.argv[2], sys.argv[3]))
    if sys.argv[1] == "--check-sweep":
        sys.exit(check_sweep(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    sys.exit(sample(int(sys.argv[1]), sys.argv[2]))
