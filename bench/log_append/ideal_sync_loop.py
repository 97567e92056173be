#!/usr/bin/env python3
"""The ceiling for a log at one sync size: BLOCK_KIB pwrite + fdatasync per iteration, nothing
else. MODE: grow (append to a new file), sparse (ftruncate 4 GiB first), falloc
(posix_fallocate 4 GiB first).

    python3 bench/log_append/ideal_sync_loop.py grow 256 [DIR]
"""
import os
import sys
import time

mode, block = sys.argv[1], int(sys.argv[2]) * 1024
directory = sys.argv[3] if len(sys.argv) > 3 else "/tmp"
duration_s = 4
buf = os.urandom(block)
path = os.path.join(directory, "ideal-sync-loop.dat")
fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
if mode == "sparse":
    os.ftruncate(fd, 4 << 30)
elif mode == "falloc":
    os.posix_fallocate(fd, 0, 4 << 30)
position = iterations = 0
write_s = sync_s = 0.0
start = time.time()
while time.time() - start < duration_s:
    a = time.perf_counter()
    os.pwrite(fd, buf, position)
    b = time.perf_counter()
    os.fdatasync(fd)
    c = time.perf_counter()
    write_s += b - a
    sync_s += c - b
    position += block
    iterations += 1
elapsed = time.time() - start
print(f"{mode} {block >> 10}k: {position / elapsed / 2**20:.0f} MiB/s, "
      f"write {write_s / iterations * 1e6:.0f} us, fdatasync {sync_s / iterations * 1e6:.0f} us")
os.close(fd)
os.unlink(path)
