#!/usr/bin/env python3
"""How long the attention backward's blocks keep 132 SMs busy, in 64-query tile-rounds, by the order
the blocks start in: the arithmetic behind the fused backward's prediction in docs/perf-notes.md.

A block is a 128-key block n of one kv head and batch row (one block an SM, as the dk/dv kernels
run) over the 8 query heads of its group, or over 8 / split of them; its tiles are the 64-query tiles
from its diagonal on: (t / 64 - 2 n) a head. Blocks go to the SM that frees first, in the given
order: longest first (today's dk/dv kernel) or shortest first (the fused kernel's ticket order,
which its fixed dQ summation order needs). For the fused kernel's order it also plays its dQ
protocol, tile-round by tile-round with +-30% jitter: block n adds query tile m two rounds after
computing it, once block n + 1 has raised m's count, and raises it a round after its own add (when
the asynchronous addition is complete); it prints how many tile-rounds all blocks together spent
waiting there.

    python3 kernels/src/test/cuda/attention_backward_schedule.py [--sms 132] [--t 2048] [--batch 8] [--kv-heads 4] [--group 8]
"""
import argparse
import heapq
import random


def makespan(durations, sms):
    free = [0] * sms
    end = 0
    for d in durations:
        start = heapq.heappop(free)
        end = max(end, start + d)
        heapq.heappush(free, start + d)
    return end


def protocol_wait(blocks, tiles, copies, heads, sms, jitter=0.3, seed=1):
    """Tile-rounds spent waiting for counts, summed over blocks, and the last block's end."""
    rnd = random.Random(seed)
    free = [0.0] * sms
    released = {}   # (copy, head, tile, n) -> when block n raised the count of (head, tile)
    waited, end = 0.0, 0.0
    for n in reversed(range(blocks)):   # ticket order: every block it waits on started earlier
        for copy in range(copies):
            order = [(h, m) for h in range(heads) for m in range(2 * n, tiles)]
            clock = heapq.heappop(free)

            def ready(h, m):   # when (h, m)'s count reaches this block's turn: at once for its diagonal block
                return 0.0 if m // 2 == n else released[(copy, h, m, n + 1)]

            for it in range(len(order) + 2):
                if it >= 2:   # the add of tile it - 2, its count raised at the end of the next round
                    r = ready(*order[it - 2])
                    waited += max(0.0, r - clock)
                    clock = max(clock, r)
                clock += 1 + rnd.uniform(-jitter, jitter) if it < len(order) else 0.05
                if it >= 3:
                    released[(copy, *order[it - 3], n)] = clock
            released[(copy, *order[-1], n)] = clock
            end = max(end, clock)
            heapq.heappush(free, clock)
    return waited, end


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sms", type=int, default=132)
    p.add_argument("--t", type=int, default=2048)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--group", type=int, default=8, help="query heads a kv head")
    a = p.parse_args()
    tiles, blocks = a.t // 64, a.t // 128
    print(f"t={a.t}, {a.batch} x {a.kv_heads} kv heads x {a.group} query heads, {a.sms} SMs: tile-rounds until the last block ends")
    for split in (1, 2, 4):
        if a.group % split:
            continue
        heads = a.group // split
        copies = a.batch * a.kv_heads * split
        work = {n: heads * (tiles - 2 * n) for n in range(blocks)}
        longest = [work[n] for n in range(blocks) for _ in range(copies)]
        shortest = [work[n] for n in reversed(range(blocks)) for _ in range(copies)]
        ideal = sum(longest) / a.sms
        waited, end = protocol_wait(blocks, tiles, copies, heads, a.sms)
        print(f"  split {split}: {len(longest)} blocks; ideal {ideal:.0f}, longest first {makespan(longest, a.sms)}, "
              f"shortest first {makespan(shortest, a.sms)}; the fused kernel's dQ order played with jitter: "
              f"{end:.0f}, {waited:.1f} tile-rounds of waiting in all")


if __name__ == "__main__":
    main()
