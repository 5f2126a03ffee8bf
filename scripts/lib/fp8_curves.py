"""Compares the loss curves scripts/gpu-fp8-curve wrote: each run against bf16-mixed of the same seed.

usage: fp8_curves.py OUT TAGS RUN...
  OUT   the folder of metrics-<run><tag>.jsonl
  TAGS  comma-separated file-name tags, one per seed ("" for the recipe's seed, "-seed1,-seed2" for SEEDS)
  RUN   the runs, bf16-mixed among them

Per seed: a table of losses, tokens/s, validation losses, and each run's distance from bf16-mixed
after warm-up (worst logged step, mean, 50-step means, steps below, the mean by quarter of the run),
for the logged curve (each record's loss_mean: the mean train loss of the steps since the record
before) and for the logged steps' own losses (loss: one step's batch). With several seeds, the mean
distance of each run per seed and over the seeds: a gap between recipes reads against the spread
of the noise floor (bf16-mixed-wgmma: bf16 rounded otherwise). Exit 1 unless every fp8 run of every
seed is within 0.5% of bf16-mixed at every logged point after warm-up (the goal as set), judged on
the logged curve (loss_mean; loss for metrics written before the trainer logged it).
"""
import json
import os
import sys

WARMUP, WINDOW, BOUND, QUARTERS = 100, 50, 0.005, 4


def read(out, name):
    path = f"{out}/metrics-{name}.jsonl"
    if not os.path.exists(path):
        return None
    return [r for r in map(json.loads, open(path)) if "memory" not in r]


def losses(records, key="loss"):
    return {r["step"]: r[key] for r in records if key in r}


def curve_key(records):
    """loss_mean where the trainer logged it, else loss."""
    return "loss_mean" if any("loss_mean" in r for r in records) else "loss"


def val(records):
    return {r["step"]: r["val_loss"] for r in records if "val_loss" in r}


def speed(records):
    xs = sorted(r["tokens_per_s"] for r in records if r.get("tokens_per_s") and r["step"] > WARMUP)
    return xs[len(xs) // 2] if xs else float("nan")


def distance(base, other):
    """Relative differences after warm-up: worst step, mean, 50-step means, steps below; None without common steps."""
    steps = sorted(s for s in base if s in other and s > WARMUP)
    if not steps:
        return None
    diffs = [(other[s] - base[s]) / base[s] for s in steps]
    windows = []
    for lo in range(WARMUP, steps[-1], WINDOW):
        ws = [s for s in steps if lo < s <= lo + WINDOW]
        if ws:
            windows.append(sum(other[s] for s in ws) / sum(base[s] for s in ws) - 1)
    span = (steps[-1] - WARMUP) / QUARTERS
    quarters = []
    for q in range(QUARTERS):
        qs = [d for s, d in zip(steps, diffs) if WARMUP + q * span < s <= WARMUP + (q + 1) * span]
        quarters.append(sum(qs) / len(qs) if qs else float("nan"))
    return {"worst": max(map(abs, diffs)), "mean": sum(diffs) / len(diffs), "windows": (min(windows), max(windows)),
            "below": sum(d < 0 for d in diffs), "steps": len(steps), "quarters": quarters}


def one_seed(out, tag, runs, table):
    """Prints the comparison of one seed's runs; returns {run: distance} and the fp8 runs' verdicts, or None if a run is missing."""
    bf16 = read(out, "bf16-mixed" + tag)
    others = {run: read(out, run + tag) for run in runs if run != "bf16-mixed"}
    if bf16 is None or not others or any(v is None for v in others.values()):
        print(f"against bf16-mixed{tag}: a run has no metrics, or there is only bf16-mixed: FAIL")
        return None
    base = losses(bf16)
    low = {run: losses(records) for run, records in others.items()}  # the table: the logged steps' own losses
    names = list(others)
    if table:
        print(f"{'step':>5} {'bf16 loss':>10} " + " ".join(f"{n[:18]:>18}" for n in names))
        steps = sorted(s for s in base if all(s in l for l in low.values()))
        for s in sorted(set(steps[::max(1, len(steps) // 25)] + steps[-1:])):
            print(f"{s:>5} {base[s]:>10.4f} " + " ".join(f"{low[n][s]:>9.4f} {(low[n][s] - base[s]) / base[s]:>+8.3%}" for n in names))
    print(f"tokens/s (median of logged steps): bf16-mixed{tag} {speed(bf16):.0f}, "
          + ", ".join(f"{n}{tag} {speed(r):.0f} ({speed(r) / speed(bf16):.3f}x)" for n, r in others.items()))
    vb = val(bf16)
    print(f"val loss bf16-mixed{tag}: " + ", ".join(f"step {s} {v:.4f}" for s, v in sorted(vb.items())))
    for n, records in others.items():
        vo = val(records)
        print(f"val loss {n}{tag}: " + ", ".join(f"step {s} {vo[s]:.4f} ({(vo[s] - vb[s]) / vb[s]:+.2%})" for s in sorted(vo) if s in vb))
    result, verdicts = {}, []
    key = curve_key(bf16)
    keys = [key] + (["loss"] if key != "loss" else [])
    what = {"loss_mean": "the logged curve (loss_mean, the mean over each logging interval)", "loss": "the logged steps' own losses (loss)"}
    for n in names:
        for k in keys:
            d = distance(losses(bf16, k), losses(others[n], k))
            if k == key:
                result[n] = d
            if d is None:
                print(f"{n}{tag}: no logged steps after warm-up in common with bf16-mixed")
                continue
            print(f"{n}{tag}{' (the noise floor)' if n == 'bf16-mixed-wgmma' else ''} against bf16-mixed after warm-up, "
                  f"{what[k]}: worst logged point {d['worst']:.3%}, mean {d['mean']:+.3%}, {WINDOW}-step means "
                  f"{d['windows'][0]:+.3%} to {d['windows'][1]:+.3%}, lower at {d['below']} of {d['steps']} logged points; "
                  "mean by quarter of the run " + ", ".join(f"{q:+.2%}" for q in d["quarters"]))
        if n.startswith("fp8"):
            d = result.get(n)
            passed = d is not None and d["steps"] >= 10 and d["worst"] <= BOUND
            verdicts.append(passed)
            worst = d["worst"] if d else float("nan")
            print(f"{n}{tag} against bf16 after warm-up: worst |relative difference| of {key} {worst:.4%} over "
                  f"{d['steps'] if d else 0} logged points (bound 0.5%): {'ok' if passed else 'FAIL'}")
    return result, verdicts


def main(argv):
    out, tags, runs = argv[1], argv[2].split(","), argv[3:]
    per_seed, ok = {}, True
    for i, tag in enumerate(tags):
        if len(tags) > 1:
            print(f"--- seed {tag.removeprefix('-seed')}")
        seed = one_seed(out, tag, runs, table=i == 0)
        if seed is None:
            ok = False
            continue
        per_seed[tag], verdicts = seed
        ok = ok and all(verdicts)
    if len(per_seed) > 1:
        print(f"mean relative train-loss distance from bf16-mixed after warm-up, per seed ({len(per_seed)} seeds):")
        for run in runs:
            if run == "bf16-mixed":
                continue
            means = [d[run]["mean"] for d in per_seed.values() if d.get(run)]
            if means:
                average = sum(means) / len(means)
                print(f"  {run}: " + ", ".join(f"{m:+.3%}" for m in means)
                      + f"; over the seeds {average:+.3%} (from {min(means):+.3%} to {max(means):+.3%})")
                quarters = [[d[run]["quarters"][q] for d in per_seed.values() if d.get(run)] for q in range(QUARTERS)]
                print(f"  {run} by quarter of the run, over the seeds: " + ", ".join(f"{sum(q) / len(q):+.2%}" for q in quarters))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
