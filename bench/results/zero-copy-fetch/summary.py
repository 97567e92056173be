#!/usr/bin/env python3
"""Median [range] per mode of run.sh outputs: summary.py run-*.txt"""
import re, statistics, sys

LINE = re.compile(r'round \d+ (\w+) produce ([\d.]+) MB/s(?: cpu_s_per_gb ([\d.]+))? '
                  r'consume ([\d.]+) MB/s (?:broker_)?cpu_s_per_gb ([\d.]+)')
for path in sys.argv[1:]:
    modes = {}
    for line in open(path):
        m = LINE.match(line)
        if m:
            modes.setdefault(m.group(1), []).append(
                [float(g) if g else None for g in m.groups()[1:]])
    print(path)
    for mode, rows in modes.items():
        def cell(i):
            xs = [r[i] for r in rows if r[i] is not None]
            return f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}]" if xs else "-"
        print(f"  {mode:9} produce MB/s {cell(0)} CPU-s/GB {cell(1)} | "
              f"consume MB/s {cell(2)} CPU-s/GB {cell(3)}")
