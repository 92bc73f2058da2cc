#!/usr/bin/env python3
"""Benchmark `ddiff server` against Debian's `docker-registry` (distribution 2.8, the code of
registry:2) on the same machine with the same payloads and the same client.

    cargo build --release -p ddiff
    python3 tests/bench/registry_server.py [--ddiff target/release/ddiff] [--size-mb 500]

Measures, per server: GET of one large blob, monolithic PUT (POST + PUT) and chunked PUT
(POST + 50 MiB PATCHes + PUT) of a large blob, 1000 manifest GETs from 64 concurrent
keep-alive clients (throughput and p99), and the server's peak RSS (VmHWM). Prints a
Markdown table with ddiff/reference ratios. Only the standard library is used.
"""
import argparse
import hashlib
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import json

CHUNK = 50 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def conn(addr):
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=600, blocksize=1 << 20)


def request(addr, method, path, body=None, headers=None):
    c = conn(addr)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def location_path(loc):
    return re.sub(r"^https?://[^/]+", "", loc)


def put_monolithic(addr, name, path, digest):
    r, _ = request(addr, "POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, r.status
    loc = location_path(r.getheader("Location"))
    sep = "&" if "?" in loc else "?"
    size = os.path.getsize(path)
    t = time.perf_counter()
    with open(path, "rb") as f:
        r, body = request(addr, "PUT", f"{loc}{sep}digest={digest}", body=f,
                          headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"})
    dt = time.perf_counter() - t
    assert r.status == 201, (r.status, body)
    return dt


def put_chunked(addr, name, path, digest):
    size = os.path.getsize(path)
    t = time.perf_counter()
    r, _ = request(addr, "POST", f"/v2/{name}/blobs/uploads/")
    assert r.status == 202, r.status
    loc = location_path(r.getheader("Location"))
    with open(path, "rb") as f:
        off = 0
        while off < size:
            chunk = f.read(CHUNK)
            r, body = request(addr, "PATCH", loc, body=chunk, headers={
                "Content-Range": f"{off}-{off + len(chunk) - 1}",
                "Content-Length": str(len(chunk)),
                "Content-Type": "application/octet-stream"})
            assert r.status == 202, (r.status, body)
            loc = location_path(r.getheader("Location"))
            off += len(chunk)
    sep = "&" if "?" in loc else "?"
    r, body = request(addr, "PUT", f"{loc}{sep}digest={digest}", headers={"Content-Length": "0"})
    assert r.status == 201, (r.status, body)
    return time.perf_counter() - t


def get_blob(addr, name, digest, size):
    c = conn(addr)
    t = time.perf_counter()
    c.request("GET", f"/v2/{name}/blobs/{digest}")
    r = c.getresponse()
    assert r.status == 200, r.status
    n = 0
    buf = bytearray(1 << 20)
    while True:
        k = r.readinto(buf)
        if not k:
            break
        n += k
    dt = time.perf_counter() - t
    c.close()
    assert n == size, (n, size)
    return dt


def push_small_image(addr, name):
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = os.urandom(1024)
    descs = []
    for blob, mt in ((config, "application/vnd.oci.image.config.v1+json"), (layer, "application/vnd.oci.image.layer.v1.tar")):
        d = "sha256:" + hashlib.sha256(blob).hexdigest()
        r, _ = request(addr, "POST", f"/v2/{name}/blobs/uploads/")
        loc = location_path(r.getheader("Location"))
        sep = "&" if "?" in loc else "?"
        r, body = request(addr, "PUT", f"{loc}{sep}digest={d}", body=blob)
        assert r.status == 201, (r.status, body)
        descs.append({"mediaType": mt, "digest": d, "size": len(blob)})
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": descs[0], "layers": descs[1:]}).encode()
    r, body = request(addr, "PUT", f"/v2/{name}/manifests/v1", body=m,
                      headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert r.status == 201, (r.status, body)


def manifest_load(addr, name, total=1000, clients=64):
    lat = []
    lock = threading.Lock()
    counter = [0]

    def worker():
        c = conn(addr)
        mine = []
        while True:
            with lock:
                if counter[0] >= total:
                    break
                counter[0] += 1
            t = time.perf_counter()
            c.request("GET", f"/v2/{name}/manifests/v1",
                      headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            mine.append(time.perf_counter() - t)
        c.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    lat.sort()
    return total / wall, lat[int(len(lat) * 0.99) - 1] * 1000


def vmhwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(addr):
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            r, _ = request(addr, "GET", "/v2/")
            if r.status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{addr} never became ready")


def start_ddiff(binary, root):
    p = subprocess.Popen([binary, "server", "--addr", "127.0.0.1:0", "--root", root],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, "RUST_LOG": "warn"})
    line = p.stdout.readline()
    m = re.search(r"http://(\S+)", line)
    assert m, line
    return p, m.group(1)


def start_reference(root, workdir):
    addr = f"127.0.0.1:{free_port()}"
    cfg = os.path.join(workdir, "ref.yml")
    with open(cfg, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
                f"http:\n  addr: {addr}\n")
    p = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(addr)
    return p, addr


def bench(label, proc, addr, files, runs):
    (a, da), (b, db) = files
    size = os.path.getsize(a)
    res = {}
    res["put_mono"] = statistics.median(put_monolithic(addr, f"bench/mono{i}", a, da) for i in range(runs))
    res["put_chunked"] = statistics.median(put_chunked(addr, f"bench/chunk{i}", b, db) for i in range(runs))
    res["get"] = statistics.median(get_blob(addr, "bench/mono0", da, size) for _ in range(runs))
    push_small_image(addr, "bench/small")
    manifest_load(addr, "bench/small", 200, 16)  # warm-up
    rps, p99 = [], []
    for _ in range(runs):
        r, p = manifest_load(addr, "bench/small")
        rps.append(r)
        p99.append(p)
    res["rps"] = statistics.median(rps)
    res["p99"] = statistics.median(p99)
    res["rss"] = vmhwm_mb(proc.pid)
    print(f"{label}: {res}", file=sys.stderr)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddiff", default="target/release/ddiff")
    ap.add_argument("--size-mb", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="ddiff-bench-", dir=args.workdir)
    try:
        files = []
        for n in ("a", "b"):
            path = os.path.join(work, n)
            h = hashlib.sha256()
            with open(path, "wb") as f:
                for _ in range(args.size_mb):
                    block = os.urandom(1 << 20)
                    h.update(block)
                    f.write(block)
            files.append((path, "sha256:" + h.hexdigest()))
        results = {}
        p, addr = start_ddiff(args.ddiff, os.path.join(work, "ddiff-root"))
        try:
            results["ddiff"] = bench("ddiff server", p, addr, files, args.runs)
        finally:
            p.terminate()
            p.wait()
        shutil.rmtree(os.path.join(work, "ddiff-root"), ignore_errors=True)
        p, addr = start_reference(os.path.join(work, "ref-root"), work)
        try:
            results["ref"] = bench("docker-registry", p, addr, files, args.runs)
        finally:
            p.terminate()
            p.wait()
        d, r = results["ddiff"], results["ref"]
        mb = args.size_mb
        print(f"| Measure ({mb} MB blob, median of {args.runs}) | ddiff server | docker-registry 2.8 | ratio (ddiff/ref) |")
        print("|---|---|---|---|")
        for key, name, unit, better in (("get", "GET blob", "MB/s", "higher"),
                                        ("put_mono", "monolithic PUT", "MB/s", "higher"),
                                        ("put_chunked", "chunked PUT (50 MiB PATCHes)", "MB/s", "higher")):
            dv, rv = mb / d[key], mb / r[key]
            print(f"| {name} | {dv:.0f} {unit} | {rv:.0f} {unit} | {dv / rv:.2f}x |")
        print(f"| 1000 manifest GETs, 64 clients: throughput | {d['rps']:.0f} req/s | {r['rps']:.0f} req/s | {d['rps'] / r['rps']:.2f}x |")
        print(f"| same: p99 latency | {d['p99']:.1f} ms | {r['p99']:.1f} ms | {d['p99'] / r['p99']:.2f}x |")
        print(f"| peak RSS of the server | {d['rss']:.0f} MB | {r['rss']:.0f} MB | {d['rss'] / r['rss']:.2f}x |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
