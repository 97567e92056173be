#!/usr/bin/env python3
"""Cost of making N files durable at once (1 KiB appended to each per round), by MODE:
seq (one fdatasync after another), tK (fdatasync on K threads), syncfs (one syncfs).

    python3 bench/log_append/multi_file_sync.py 100 syncfs [DIR]
"""
import ctypes
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

files, mode = int(sys.argv[1]), sys.argv[2]
directory = os.path.join(sys.argv[3] if len(sys.argv) > 3 else "/tmp", "multi-file-sync")
duration_s = 3
os.makedirs(directory, exist_ok=True)
fds = [os.open(f"{directory}/f{i}", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
       for i in range(files)]
pool = ThreadPoolExecutor(int(mode[1:])) if mode.startswith("t") else None
buf = os.urandom(1100)
position = rounds = 0
start = time.time()
while time.time() - start < duration_s:
    for fd in fds:
        os.pwrite(fd, buf, position)
    position += len(buf)
    if mode == "seq":
        for fd in fds:
            os.fdatasync(fd)
    elif mode == "syncfs":
        if ctypes.CDLL(None, use_errno=True).syncfs(fds[0]) != 0:
            raise OSError(ctypes.get_errno(), "syncfs")
    else:
        list(pool.map(os.fdatasync, fds))
    rounds += 1
elapsed = time.time() - start
print(f"N={files} {mode}: {elapsed / rounds * 1e3:.2f} ms/round, {rounds * files / elapsed:.0f} file-syncs/s")
for fd in fds:
    os.close(fd)
shutil.rmtree(directory)
