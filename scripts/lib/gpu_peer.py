"""The PyTorch peer of scripts/bench-gpu, on the GPU host.

transformers' LlamaForCausalLM with the TinyLlama-1.1B shape, fp32 weights under bf16 autocast,
SDPA attention, fused AdamW (betas 0.9/0.95, weight decay 0.1), gradient clipping at 1.0: the
same recipe as our step in docs/benchmarks.md. Times a training step eager and under torch.compile (median of
the timed steps after warm-up, host clock after a synchronize), and SDPA alone (causal GQA) at
the attention shape of our kernel table. Usage:
  python3 gpu_peer.py OUT_JSON [--batch 8] [--seq 2048] [--accumulate 1] [--variants eager,compile] [--attention-batch 8]
With --accumulate K a step is K micro-batches' forward and backward, then one clip and one AdamW step.
"""
import argparse, gc, json, statistics, time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

FLOPS_PER_TOKEN = 6 * 1.034e9 + 12 * 22 * 2048 * 2048  # 6 N + 12 L T d at seq 2048 = 7.31 GFLOP (N: matmul parameters)
PEAK = 989e12

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--batch", type=int, default=8)
parser.add_argument("--seq", type=int, default=2048)
parser.add_argument("--accumulate", type=int, default=1)
parser.add_argument("--variants", default="eager,compile")
parser.add_argument("--attention-batch", type=int, default=8)
parser.add_argument("--warmup", type=int, default=3)
parser.add_argument("--steps", type=int, default=8)
args = parser.parse_args()

config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                     num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5,
                     rope_theta=10000.0, tie_word_embeddings=False)


def sdpa_kernels(b, t, nh=32, nkv=4, hs=64):
    q = torch.randn(b, nh, t, hs, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(b, nkv, t, hs, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(b, nkv, t, hs, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    dout = torch.randn(b, nh, t, hs, device="cuda", dtype=torch.bfloat16)

    def timed(fn, reps=20):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return statistics.median(times)

    fwd = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    bwd = timed(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True))
    flops = 4.0 * b * nh * t * t * hs / 2
    print(f"SDPA bf16 b={b} t={t} nh={nh} nkv={nkv} hs={hs} causal: forward {fwd:.3f} ms ({flops / fwd / 1e9:.0f} TFLOP/s),"
          f" backward {bwd:.3f} ms ({2.5 * flops / bwd / 1e9:.0f} TFLOP/s)", flush=True)
    return {"shape": f"b={b} t={t} nh={nh} nkv={nkv} hs={hs}", "sdpa_fwd_ms": round(fwd, 3), "sdpa_bwd_ms": round(bwd, 3)}


def train(variant, b, t):
    torch.manual_seed(3407)
    try:
        model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
    except Exception:
        model = LlamaForCausalLM(config)
    model = model.cuda().float().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    forward = torch.compile(model) if variant == "compile" else model

    def step(batches):
        for x, y in batches:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = forward(input_ids=x).logits
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), y.view(-1)) / len(batches)
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    torch.cuda.reset_peak_memory_stats()
    times = []
    generator = torch.Generator(device="cuda").manual_seed(5)
    start_all = time.time()
    for s in range(args.warmup + args.steps):
        batches = [(torch.randint(0, 32000, (b, t), device="cuda", generator=generator),
                    torch.randint(0, 32000, (b, t), device="cuda", generator=generator)) for _ in range(args.accumulate)]
        torch.cuda.synchronize()
        start = time.perf_counter()
        loss = step(batches) * args.accumulate
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = statistics.median(times[args.warmup:])
    peak = torch.cuda.max_memory_allocated() / 2**30
    reserved = torch.cuda.max_memory_reserved() / 2**30
    tokens = b * t * args.accumulate / median
    print(f"peer {variant}: b={b} t={t} x {args.accumulate} micro-batches, steps {[round(x, 4) for x in times]}, median {median * 1e3:.1f} ms, "
          f"{tokens:.0f} tokens/s, MFU {100 * tokens * FLOPS_PER_TOKEN / PEAK:.1f}%, peak allocated {peak:.1f} GiB "
          f"(reserved {reserved:.1f}), loss {loss.item():.4f}, {time.time() - start_all:.0f} s in all", flush=True)
    result = {"tokens_per_s": round(tokens), "step_ms": round(median * 1e3, 2), "mfu": round(tokens * FLOPS_PER_TOKEN / PEAK, 4),
              "peak_mem_gib": round(peak, 2), "micro_batch": b, "accumulate": args.accumulate}
    del model, optimizer, forward
    gc.collect()
    torch.cuda.empty_cache()
    return result


result = {"torch": torch.__version__, "device": torch.cuda.get_device_name()}
try:
    import transformers
    result["transformers"] = transformers.__version__
except Exception:
    pass
result["attention"] = sdpa_kernels(args.attention_batch, args.seq)
torch.cuda.empty_cache()
for variant in [v for v in args.variants.split(",") if v]:
    try:
        result[variant] = train(variant, args.batch, args.seq)
    except Exception as e:  # one failed variant (out of memory, compile error) does not lose the others
        print(f"peer {variant} failed: {e!r}"[:2000], flush=True)
        result[variant] = {"error": repr(e)[:500]}
        gc.collect()
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
with open(args.out, "w") as f:
    json.dump(result, f, indent=1)
