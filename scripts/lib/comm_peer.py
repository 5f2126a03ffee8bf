"""The communication benchmark's peer, one process per GPU under torchrun: all-gather and
reduce-scatter of the same fp32 buffer through torch.distributed's NCCL backend, each call
followed by a synchronisation as in CollectiveBench; nccl-tests' bus bandwidth
(algbw = buffer bytes / time, busbw = algbw x (W - 1) / W), the median over the iterations.

usage: torchrun --standalone --nproc_per_node W scripts/lib/comm_peer.py OUT.json [FLOATS] [ITERATIONS]
"""
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist


def timed(call, iterations):
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    seconds = []
    for _ in range(iterations):
        dist.barrier()
        torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main():
    out = sys.argv[1]
    floats = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 26
    iterations = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    world = dist.get_world_size()
    full = torch.ones(floats - floats % world, dtype=torch.float32, device="cuda")
    shard = torch.ones(full.numel() // world, dtype=torch.float32, device="cuda")
    result = {"ranks": world, "bytes": full.numel() * 4, "iterations": iterations,
              "torch": torch.__version__, "nccl": ".".join(map(str, torch.cuda.nccl.version()))}
    for name, call in [("all_gather", lambda: dist.all_gather_into_tensor(full, shard)),
                       ("reduce_scatter", lambda: dist.reduce_scatter_tensor(shard, full))]:
        median = timed(call, iterations)
        algbw = full.numel() * 4 / median / 1e9
        result[name] = {"median_us": median * 1e6, "algbw_gb_s": algbw, "busbw_gb_s": algbw * (world - 1) / world}
    if dist.get_rank() == 0:
        json.dump(result, open(out, "w"), indent=2)
        print(f"peer (torch {torch.__version__} NCCL, {world} ranks, {full.numel() * 4 >> 20} MiB): all_gather busbw "
              f"{result['all_gather']['busbw_gb_s']:.1f} GB/s, reduce_scatter busbw {result['reduce_scatter']['busbw_gb_s']:.1f} GB/s")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
