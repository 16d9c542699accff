#!/usr/bin/env python3
"""Diagnosis of issue 17's routing p99 during a switch: the latency of small durable appends
(what the audit log does per routed case: a 4 KiB overwrite + fdatasync, every ~4 ms) while
another thread writes a 208 MB file (what an import does with the new layer), for each way of
writing that file, repeated and interleaved; latencies aggregated per mode, quiet (before and
after the write) against during the write.

  python3 benches/fsync_behind_writer.py DIR REPS MODE…
  python3 benches/fsync_behind_writer.py /srv/citygrid 4 srf:2048 fds:512 fds:1024 none:0

MODE is KIND:KiB — `srf:2048`: sync_file_range every 2 MiB, start this chunk's writeback and
wait for the last one's, one fsync at the end (citygrid before this change); `fds:512`:
fdatasync every 512 KiB (src/store/atomic.rs now); `none:0`: plain writes, one fsync at the end.
DIR must be on the disk under test (the data directory's), not tmpfs.
"""
import os, sys, time, threading, ctypes, random
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
WRITE, WAIT_BEFORE, WAIT_AFTER = 2, 1, 4
d = sys.argv[1]; reps = int(sys.argv[2]); modes = sys.argv[3:]
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
