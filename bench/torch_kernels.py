#!/usr/bin/python3
"""PyTorch CPU reference timings for the kernel benchmark (same JSON lines as lowbit_bench_kernels).

Usage: /usr/bin/python3 bench/torch_kernels.py [--threads 2] [--reps 10]
sgemm is torch.mm on n x n x n; conv2d is F.conv2d forward, backward (data and weight
gradient, through a retained graph) and forward+backward, on the ResNet-20 and VGG-7 layer
shapes at batch 128.
"""
import argparse, json, statistics, time
import torch
import torch.nn.functional as F

# (name, C, O, H=W, stride): the 3x3 padding-1 layers of ResNet-20 and VGG-7 at batch 128.
CONVS = [("resnet20", 3, 16, 32, 1), ("resnet20", 16, 16, 32, 1), ("resnet20", 16, 32, 32, 2),
         ("resnet20", 32, 32, 16, 1), ("resnet20", 32, 64, 16, 2), ("resnet20", 64, 64, 8, 1),
         ("vgg7", 3, 128, 32, 1), ("vgg7", 128, 128, 32, 1), ("vgg7", 128, 256, 16, 1),
         ("vgg7", 256, 256, 16, 1), ("vgg7", 256, 512, 8, 1), ("vgg7", 512, 512, 8, 1)]


def median_ms(fn, reps):
    fn()  # warm-up (allocations, oneDNN primitive creation)
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def emit(kernel, shape, threads, flops, ms, **extra):
    rec = {"kernel": kernel, "shape": shape, "threads": threads,
           "gflops": round(flops / ms / 1e6, 1), "median_ms": round(ms, 3), "impl": "torch"}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--only", default="", help="sgemm or conv2d: run one family")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.only in ("", "sgemm"):
        for n in (256, 512, 1024, 2048):
            x, y = torch.randn(n, n), torch.randn(n, n)
            out = torch.empty(n, n)
            t = time.perf_counter(); torch.mm(x, y, out=out); first = time.perf_counter() - t
            ms = median_ms(lambda: torch.mm(x, y, out=out), min(2000, max(a.reps, int(0.5 / max(first, 1e-6)))))
            emit("sgemm", [n, n, n], a.threads, 2.0 * n ** 3, ms)
    if a.only in ("", "conv2d"):
        for net, c, o, hw, s in CONVS:
            x = torch.randn(a.batch, c, hw, hw, requires_grad=True)
            w = torch.randn(o, c, 3, 3, requires_grad=True)
            y = F.conv2d(x, w, None, s, 1)
            dy = torch.randn_like(y)
            flops = 2.0 * y.numel() * c * 9
            shape = [a.batch, c, hw, hw, o, 3, 3, s]
            fwd = median_ms(lambda: F.conv2d(x, w, None, s, 1), a.reps)
            emit("conv2d_fwd", shape, a.threads, flops, fwd, net=net)

            yg = F.conv2d(x, w, None, s, 1)
            bwd = median_ms(lambda: torch.autograd.grad(yg, (x, w), dy, retain_graph=True), a.reps)
            emit("conv2d_bwd", shape, a.threads, 2 * flops, bwd, net=net)

            def fwd_bwd():
                yy = F.conv2d(x, w, None, s, 1)
                torch.autograd.grad(yy, (x, w), dy)  # returns the gradients, accumulates nothing
            emit("conv2d_fwd_bwd", shape, a.threads, 3 * flops, median_ms(fwd_bwd, a.reps), net=net)


if __name__ == "__main__":
    main()
