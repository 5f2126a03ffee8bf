"""On the GPU host: `score` against Hugging Face transformers' LlamaForCausalLM.

Builds a random TinyLlama-shape checkpoint with transformers, scores one token sequence with
transformers (fp32 and float64) and with our launcher (each device given), and prints the
largest absolute logprob difference. Usage:
  python3 scripts/gpu-hf-compare.py JAVA JAR OUT_JSON [device ...]
"""
import json, os, subprocess, sys, tempfile, time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

java, jar, out_json = sys.argv[1:4]
devices = sys.argv[4:] or ["cpu"]
torch.manual_seed(0)
config = LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                     num_attention_heads=32, num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0,
                     max_position_embeddings=2048, tie_word_embeddings=False)
model = LlamaForCausalLM(config).eval()
directory = tempfile.mkdtemp(prefix="tinyllama-hf-")
model.save_pretrained(directory, safe_serialization=True)
tokens = torch.randint(0, 32000, (1, 96), generator=torch.Generator().manual_seed(1))
tokens[0, 0] = 1

def hf_logprobs(dtype):
    m = model.to("cuda", dtype=dtype)
    with torch.no_grad():
        logits = m(tokens.cuda()).logits.double()
    lp = torch.log_softmax(logits[0, :-1], dim=-1).gather(1, tokens.cuda()[0, 1:, None])[:, 0]
    return lp.cpu()

reference = hf_logprobs(torch.float64)
hf32 = hf_logprobs(torch.float32)
result = {"checkpoint": "random TinyLlama-1.1B shape (transformers init, seed 0)", "tokens": tokens.shape[1],
          "hf_fp32_vs_fp64_max_abs": float((hf32 - reference).abs().max())}
flags = "--add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED".split()
for device in devices:
    start = time.time()
    proc = subprocess.run([java, *flags, "-jar", jar, "score", "--device", device, "--checkpoint", directory,
                           "--tokens", ",".join(map(str, tokens[0].tolist()))], capture_output=True, text=True)
    if proc.returncode != 0:
        result[device] = {"error": proc.stderr.strip()[-500:]}
        continue
    ours = torch.tensor(json.loads(proc.stdout)["logprobs"], dtype=torch.float64)
    result[device] = {"max_abs_vs_hf_fp64": float((ours - reference).abs().max()),
                      "max_abs_vs_hf_fp32": float((ours - hf32).abs().max()),
                      "seconds": round(time.time() - start, 1)}
print(json.dumps(result, indent=1))
with open(out_json, "w") as f:
    json.dump(result, f, indent=1)
