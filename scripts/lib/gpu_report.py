"""Merges scripts/bench-gpu's two halves (ours.json from GpuTrainBench, peer.json from
gpu_peer.py) into gpu-train.json and prints the summary table and the ratio to the peer.
Usage: python3 gpu_report.py OURS_JSON PEER_JSON OUT_JSON"""
import datetime, json, sys

ours = json.load(open(sys.argv[1]))
try:
    peer = json.load(open(sys.argv[2]))
except (OSError, ValueError):
    peer = {}
eager, compiled = peer.get("eager", {}), peer.get("compile", {})
result = {
    "device": ours["device"],
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    "model": ours["model"], "seq_len": ours["seq_len"], "micro_batch": ours["micro_batch"],
    "accumulate": ours.get("accumulate", 1),
    "precision": ours.get("precision", "bf16-mixed") + " (fp32 master weights, AdamW, clipping 1.0)",
    "attention_kernel": ours["attention_kernel"],
    "step_ms": ours["step_ms"], "tokens_per_s": ours["tokens_per_s"], "mfu": ours["mfu"],
    "flops_per_token": ours["flops_per_token"], "peak_flops": 989e12, "peak_mem_gib": ours["peak_mem_gib"],
    "peer": "PyTorch %s + transformers %s LlamaForCausalLM, bf16 autocast, SDPA, fused AdamW" % (peer.get("torch"), peer.get("transformers")),
    "peer_micro_batch": eager.get("micro_batch") or compiled.get("micro_batch"),
    "peer_eager_tokens_per_s": eager.get("tokens_per_s"), "peer_eager_peak_mem_gib": eager.get("peak_mem_gib"),
    "peer_compiled_tokens_per_s": compiled.get("tokens_per_s"), "peer_compiled_peak_mem_gib": compiled.get("peak_mem_gib"),
    "ops_ms": ours.get("ops_ms", {}),
    "attention_kernels_ms": {**ours.get("attention", {}), **{k: v for k, v in peer.get("attention", {}).items() if k != "shape"}},
}
best_peer = max([x for x in (result["peer_eager_tokens_per_s"], result["peer_compiled_tokens_per_s"]) if x] or [0])
result["ratio_to_best_peer"] = round(result["tokens_per_s"] / best_peer, 3) if best_peer else None
json.dump(result, open(sys.argv[3], "w"), indent=1)
print(f"micro-batches an optimizer step: {result['accumulate']}")
print(f"{'':24} {'tokens/s':>9} {'MFU':>6} {'peak GiB':>9} {'batch':>6}")
print(f"{'ours (' + result['attention_kernel'][:5] + ')':24} {result['tokens_per_s']:>9.0f} {100 * result['mfu']:>5.1f}% {result['peak_mem_gib']:>9.1f} {result['micro_batch']:>6}")
for name, r in (("peer eager", eager), ("peer torch.compile", compiled)):
    if r.get("tokens_per_s"):
        print(f"{name:24} {r['tokens_per_s']:>9.0f} {100 * r['mfu']:>5.1f}% {r['peak_mem_gib']:>9.1f} {r['micro_batch']:>6}")
    elif r:
        print(f"{name:24} failed: {r.get('error', '')[:80]}")
a = result["attention_kernels_ms"]
print("attention (ms)", a.get("shape"), " ".join(f"{k}={v}" for k, v in a.items() if k != "shape"))
if best_peer:
    print(f"ratio ours / best peer: {result['ratio_to_best_peer']:.3f}")
