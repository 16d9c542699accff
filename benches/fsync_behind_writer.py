#!/usr/bin/env python3
"""Diagnosis of issue 17's routing p99 during a switch (BENCHMARKS.md, "Routing during a
switch: where a routed case waits"). Two experiments on the disk under test:

1. `DIR REPS MODE…`: the latency of small durable appends (what the audit log does per routed
   case: a 4 KiB overwrite + fdatasync, every ~4 ms) while another thread writes a 208 MB file
   (what an import does with the new layer), per way of writing that file, repeated and
   interleaved; latencies aggregated per mode, quiet (before and after the write) against
   during the write. MODE is KIND:KiB — `srf:2048`: sync_file_range every 2 MiB, starting this
   chunk's writeback and waiting for the last one's, one fsync at the end (src/store/atomic.rs);
   `fds:512`: fdatasync every 512 KiB; `none:0`: plain writes, one fsync at the end.

     python3 benches/fsync_behind_writer.py /srv/citygrid 5 srf:2048 fds:512 none:0

2. `DIR carry`: whether a flush carries data handed to the disk before it — an fsync of 4 KiB
   in one file right after 0, 2, 8 or 32 MiB of another were written and completed with
   sync_file_range (handed over, not flushed), 12 times each. If the time grew with the MiB,
   the layer would have to be flushed as it is written, not only handed over.

     python3 benches/fsync_behind_writer.py /srv/citygrid carry

DIR must be on the disk under test (the data directory's), not tmpfs.
"""
import os, sys, time, threading, ctypes, random
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
WRITE, WAIT_BEFORE, WAIT_AFTER = 2, 1, 4
d = sys.argv[1]
if sys.argv[2] == "carry":
    a = os.open(f"{d}/a", os.O_RDWR | os.O_CREAT); os.ftruncate(a, 1 << 20); os.fsync(a)
    b = os.open(f"{d}/b", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    res = {}
    for rep in range(12):
        for mb in (0, 2, 8, 32):
            if mb:
                os.pwrite(b, os.urandom(mb << 20), 0)
                libc.sync_file_range(b, 0, mb << 20, WAIT_BEFORE | WRITE | WAIT_AFTER)
            time.sleep(0.05)
            os.pwrite(a, os.urandom(4096), 0)
            t = time.perf_counter(); os.fsync(a)
            res.setdefault(mb, []).append((time.perf_counter() - t) * 1e3)
    os.close(a); os.close(b); os.unlink(f"{d}/a"); os.unlink(f"{d}/b")
    for mb, v in res.items():
        v.sort()
        print(f"{mb:3} MiB handed over before: fsync of 4 KiB elsewhere p50 {v[len(v) // 2]:.2f} ms, max {v[-1]:.2f} ms")
    sys.exit(0)
reps = int(sys.argv[2]); modes = sys.argv[3:]
total = 208 << 20
res = {}
def run(mode):
    kind, chunk = mode.split(":"); chunk = int(chunk) << 10
    lat = []; phase = ["quiet"]; stop = [False]
    def auditor():
        fd = os.open(f"{d}/wal", os.O_RDWR | os.O_CREAT)
        os.ftruncate(fd, 4 << 20); os.fsync(fd)
        off = 0; buf = os.urandom(4096)
        while not stop[0]:
            t = time.perf_counter(); p = phase[0]
            os.pwrite(fd, buf, off); off = (off + 4096) % (4 << 20)
            os.fdatasync(fd)
            lat.append(((time.perf_counter() - t) * 1e3, p))
            time.sleep(0.004)
        os.close(fd)
    th = threading.Thread(target=auditor); th.start()
    time.sleep(2)
    phase[0] = "write"; t0 = time.perf_counter()
    fd = os.open(f"{d}/big.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    data = os.urandom(256 << 10)
    written = started = waited = 0
    while written < total:
        os.write(fd, data); written += len(data)
        if written - started >= chunk:
            if kind == "srf":
                libc.sync_file_range(fd, started, written - started, WRITE)
                if started > waited:
                    libc.sync_file_range(fd, waited, started - waited, WAIT_BEFORE | WRITE | WAIT_AFTER)
                waited = started
            elif kind == "fds":
                os.fdatasync(fd)
            started = written
    os.fsync(fd); os.close(fd)
    tw = time.perf_counter() - t0
    phase[0] = "after"; time.sleep(2); stop[0] = True; th.join()
    os.unlink(f"{d}/big.tmp")
    for ms, p in lat: res.setdefault((mode, p), []).append(ms)
    res.setdefault((mode, "secs"), []).append(tw)
for r in range(reps):
    for m in modes: run(m)
os.unlink(f"{d}/wal")
def q(v, p): return v[min(len(v) - 1, int(len(v) * p))]
for m in modes:
    w = sorted(res[(m, "write")]); qu = sorted(res[(m, "quiet")] + res[(m, "after")])
    secs = sorted(res[(m, "secs")])
    print(f"{m:10} write {secs[len(secs)//2]:.2f}s (median of {len(secs)}) | quiet n={len(qu)} p50 {q(qu,.5):.2f} p90 {q(qu,.9):.2f} p99 {q(qu,.99):.2f} | writing n={len(w)} p50 {q(w,.5):.2f} p90 {q(w,.9):.2f} p99 {q(w,.99):.2f} max {w[-1]:.1f}")
