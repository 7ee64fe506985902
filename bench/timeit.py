#!/usr/bin/env python3
"""Median wall time of commands over N runs each, in seconds.

`timeit.py N CMD...` prints one median. `timeit.py N CMD1... ::: CMD2... [::: ...]` runs the
commands in turn, round after round, so that whatever else the machine does in the meantime
weighs on each of them alike, and prints one median per line, in order.
"""
import statistics
import subprocess
import sys
import time

runs = int(sys.argv[1])
commands = [[]]
for arg in sys.argv[2:]:
    if arg == ":::":
        commands.append([])
    else:
        commands[-1].append(arg)
times = [[] for _ in commands]
for _ in range(runs):
    for cmd, spent in zip(commands, times):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        spent.append(time.perf_counter() - start)
for spent in times:
    print(f"{statistics.median(spent):.6f}")
