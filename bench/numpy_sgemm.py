#!/usr/bin/python3
"""numpy (OpenBLAS) sgemm timings, as the same JSON lines lowbit_bench_kernels prints.

Usage: /usr/bin/python3 bench/numpy_sgemm.py [--threads 2] [--reps 10]
The thread count reaches OpenBLAS through OPENBLAS_NUM_THREADS, so it is set before numpy loads.
"""
import argparse, json, os, statistics, sys, time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    import numpy as np
    rng = np.random.default_rng(0)
    for n in (256, 512, 1024, 2048):
        x = rng.standard_normal((n, n), dtype=np.float32)
        y = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        t = time.perf_counter(); np.matmul(x, y, out=out); first = time.perf_counter() - t
        # Enough repetitions for about half a second, so small sizes are not timer noise.
        reps = min(2000, max(a.reps, int(0.5 / max(first, 1e-6))))
        times = []
        for _ in range(reps):
            t = time.perf_counter(); np.matmul(x, y, out=out); times.append((time.perf_counter() - t) * 1e3)
        ms = statistics.median(times)
        print(json.dumps({"kernel": "sgemm", "shape": [n, n, n], "threads": a.threads,
                          "gflops": round(2.0 * n ** 3 / ms / 1e6, 1), "median_ms": round(ms, 3),
                          "impl": "numpy-" + np.__version__}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
