#!/usr/bin/env python3
"""Writes the PyTorch-format test fixtures in this folder with the standard library only.

It reproduces what torch.save writes: a zip with <archive>/data.pkl (pickle protocol 2, tensors
as torch._utils._rebuild_tensor_v2 calls, storages as persistent ids
('storage', torch.<Type>Storage, key, 'cpu', numel)), <archive>/data/<key> raw little-endian
storages, <archive>/byteorder and <archive>/version. Next to each PyTorch directory it writes the
same weights as safetensors (ref-*), so a test can compare the two readers. It also writes the
hostile and damaged files the refusal tests use.

Run from the repository root:  python3 model/src/test/resources/torch/make_fixtures.py
"""
import collections
import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MARKER = "/tmp/tinyllamaj-pickle-marker"

# Stand-in torch modules, so that pickle names the same globals torch.save does.
torch = types.ModuleType("torch")
torch_utils = types.ModuleType("torch._utils")
torch._utils = torch_utils
sys.modules["torch"] = torch
sys.modules["torch._utils"] = torch_utils


def _rebuild_tensor_v2(*args):
    raise AssertionError("never called while writing")


_rebuild_tensor_v2.__module__ = "torch._utils"
torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
for name in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage", "ComplexFloatStorage"):
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)

ELEMENT = {"FloatStorage": ("<f", 4), "HalfStorage": ("<e", 2), "BFloat16Storage": (None, 2), "LongStorage": ("<q", 8),
           "ComplexFloatStorage": (None, 8)}


class Storage:
    def __init__(self, key, kind, data, numel=None):
        self.key, self.kind, self.data = key, kind, data
        self.numel = numel if numel is not None else len(data) // ELEMENT[kind][1]


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __reduce_ex__(self, protocol):
        return (_rebuild_tensor_v2, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict()))


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.kind), obj.key, "cpu", obj.numel)
        return None


def put(z, name, data):
    """A fixed timestamp, so that rerunning the script reproduces the files byte for byte."""
    z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)


def torch_save(path, obj, protocol=2, archive="archive"):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=protocol).dump(obj)
    storages = {}
    collect(obj, storages)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        put(z, archive + "/data.pkl", buf.getvalue())
        put(z, archive + "/byteorder", "little")
        for key, s in storages.items():
            put(z, archive + "/data/" + key, s.data)
        put(z, archive + "/version", "3\n")


def collect(obj, storages):
    if isinstance(obj, Tensor):
        storages[obj.storage.key] = obj.storage
    elif isinstance(obj, dict):
        for v in obj.values():
            collect(v, storages)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            collect(v, storages)


def raw_pickle_zip(path, pickle_bytes):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        put(z, "archive/data.pkl", pickle_bytes)
        put(z, "archive/byteorder", "little")
        put(z, "archive/version", "3\n")


# ---- weights -------------------------------------------------------------------------------

CONFIG = dict(vocab_size=32, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0, max_position_embeddings=16)
HEAD = CONFIG["hidden_size"] // CONFIG["num_attention_heads"]


def shapes(tied):
    c = CONFIG
    d, i, q, kv = c["hidden_size"], c["intermediate_size"], c["num_attention_heads"] * HEAD, c["num_key_value_heads"] * HEAD
    out = {"model.embed_tokens.weight": (c["vocab_size"], d)}
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        out.update({p + "input_layernorm.weight": (d,), p + "self_attn.q_proj.weight": (q, d),
                    p + "self_attn.k_proj.weight": (kv, d), p + "self_attn.v_proj.weight": (kv, d),
                    p + "self_attn.o_proj.weight": (d, q), p + "post_attention_layernorm.weight": (d,),
                    p + "mlp.gate_proj.weight": (i, d), p + "mlp.up_proj.weight": (i, d), p + "mlp.down_proj.weight": (d, i)})
    out["model.norm.weight"] = (d,)
    if not tied:
        out["lm_head.weight"] = (c["vocab_size"], d)
    return out


def values(name, n):
    """Deterministic values: norms near 1, matrices in [-0.25, 0.25), from a hash of the name."""
    seed = sum(ord(ch) * (k + 1) for k, ch in enumerate(name))
    out = []
    for k in range(n):
        u = ((k + 1) * 2654435761 + seed * 40503) % 4294967296 / 4294967296.0
        out.append(1.0 + 0.5 * (u - 0.5) if name.endswith("norm.weight") else 0.5 * (u - 0.5))
    return out


def encode(vals, kind):
    if kind == "BFloat16Storage":  # the upper half of the fp32 bits: exactly representable values
        return b"".join(struct.pack("<f", v)[2:] for v in vals)
    return b"".join(struct.pack(ELEMENT[kind][0], v) for v in vals)


def decoded(vals, kind):
    """The values as the file holds them, for the safetensors reference."""
    if kind == "BFloat16Storage":
        return [struct.unpack("<f", b"\0\0" + struct.pack("<f", v)[2:])[0] for v in vals]
    return [struct.unpack(ELEMENT[kind][0], struct.pack(ELEMENT[kind][0], v))[0] for v in vals]


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def state_dict(kind, tied, fused_qkv=True, transposed_down=True):
    """Like model.state_dict(): an OrderedDict with _metadata; layer 0's q, k, v are views at offsets
    into one storage, layer 1's down_proj is a transposed (strided) view, a tied lm_head shares
    the embedding's storage. Returns the dict and each tensor's logical row-major values."""
    sd = collections.OrderedDict()
    sd._metadata = collections.OrderedDict({"": {"version": 1}})
    logical = {}
    shp = shapes(tied)
    counter = [0]

    def new_storage(vals):
        counter[0] += 1
        return Storage(str(counter[0] - 1), kind, encode(vals, kind))

    names = list(shp)
    for name in names:
        if name in sd:
            continue
        shape = shp[name]
        vals = decoded(values(name, numel(shape)), kind)
        if fused_qkv and name == "model.layers.0.self_attn.q_proj.weight":
            parts = [name, name.replace("q_proj", "k_proj"), name.replace("q_proj", "v_proj")]
            all_vals = []
            for part in parts:
                logical[part] = decoded(values(part, numel(shp[part])), kind)
                all_vals += logical[part]
            storage = new_storage(all_vals)
            offset = 0
            for part in parts:
                rows, cols = shp[part]
                sd[part] = Tensor(storage, offset, shp[part], (cols, 1))
                offset += rows * cols
            continue
        logical[name] = vals
        if transposed_down and name == "model.layers.1.mlp.down_proj.weight":
            rows, cols = shape
            stored = [vals[r * cols + c] for c in range(cols) for r in range(rows)]  # column-major
            sd[name] = Tensor(new_storage(stored), 0, shape, (1, rows))
            continue
        stride = (shape[1], 1) if len(shape) == 2 else (1,)
        sd[name] = Tensor(new_storage(vals), 0, shape, stride)
    if tied:
        e = sd["model.embed_tokens.weight"]
        sd["lm_head.weight"] = Tensor(e.storage, 0, e.size, e.stride)
    return sd, logical


def write_config(d, tied, dtype):
    os.makedirs(d, exist_ok=True)
    cfg = dict(architectures=["LlamaForCausalLM"], model_type="llama", tie_word_embeddings=tied, torch_dtype=dtype, **CONFIG)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


def write_safetensors(path, logical, st_dtype):
    fmt = {"F32": "<f", "F16": "<e"}
    header, blobs, off = {}, [], 0
    for name, vals in logical.items():
        if st_dtype == "BF16":
            blob = b"".join(struct.pack("<f", v)[2:] for v in vals)
        else:
            blob = b"".join(struct.pack(fmt[st_dtype], v) for v in vals)
        shape = shapes(False).get(name)
        header[name] = {"dtype": st_dtype, "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def model_fixture(name, kind, st_dtype, tied, shards):
    d = os.path.join(HERE, name)
    sd, logical = state_dict(kind, tied)
    write_config(d, tied, {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[st_dtype])
    if shards == 1:
        torch_save(os.path.join(d, "pytorch_model.bin"), sd)
    else:
        keys = list(sd)
        weight_map = {}
        for s in range(shards):
            part = collections.OrderedDict((k, sd[k]) for k in keys[s::shards])
            file = "pytorch_model-%05d-of-%05d.bin" % (s + 1, shards)
            torch_save(os.path.join(d, file), part, archive="pytorch_model-%05d-of-%05d" % (s + 1, shards))
            weight_map.update({k: file for k in part})
        with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)
    ref = os.path.join(HERE, "ref-" + name)
    write_config(ref, tied, "float32")
    write_safetensors(os.path.join(ref, "model.safetensors"), logical, st_dtype)


LIT_NAMES = {"model.embed_tokens.weight": "transformer.wte.weight", "model.norm.weight": "transformer.ln_f.weight",
             "lm_head.weight": "lm_head.weight", "input_layernorm.weight": "norm_1.weight",
             "self_attn.o_proj.weight": "attn.proj.weight", "post_attention_layernorm.weight": "norm_2.weight",
             "mlp.gate_proj.weight": "mlp.swiglu.w1.weight", "mlp.up_proj.weight": "mlp.swiglu.w2.weight",
             "mlp.down_proj.weight": "mlp.swiglu.w3.weight"}


def hf_values(transform=lambda name, v: v):
    return {n: decoded(transform(n, values(n, numel(shape))), "FloatStorage") for n, shape in shapes(False).items()}


def lit_state_dict(logical):
    """Tensors in Hugging Face names (the fp32 fixture's weights, or moments) in lit-gpt's names
    and layout: attn.attn holds, for each query group, its q_per_kv query heads, its key head
    and its value head (lit-gpt's convert_hf_checkpoint interleaves them so)."""
    c = CONFIG
    shp = shapes(False)
    groups, q_per_kv, d = c["num_key_value_heads"], c["num_attention_heads"] // c["num_key_value_heads"], c["hidden_size"]
    lit = collections.OrderedDict()
    for name in shp:
        if "self_attn.k_proj" in name or "self_attn.v_proj" in name:
            continue
        if "self_attn.q_proj" in name:
            layer = name.split(".")[2]
            rows = lambda vals, first, count: vals[first * d:(first + count) * d]
            q, k, v = (logical[name.replace("q_proj", p)] for p in ("q_proj", "k_proj", "v_proj"))
            packed = []
            for g in range(groups):
                packed += rows(q, g * q_per_kv * HEAD, q_per_kv * HEAD) + rows(k, g * HEAD, HEAD) + rows(v, g * HEAD, HEAD)
            lit["transformer.h.%s.attn.attn.weight" % layer] = (packed, (len(packed) // d, d))
            continue
        if name.startswith("model.layers."):
            parts = name.split(".")
            lit_name = "transformer.h.%s.%s" % (parts[2], LIT_NAMES[".".join(parts[3:])])
        else:
            lit_name = LIT_NAMES[name]
        lit[lit_name] = (logical[name], shp[name])
    return lit


def lit_fixtures():
    lit = lit_state_dict(hf_values())
    # moments in Hugging Face names first, so that a safetensors copy can be the tests' reference
    hf_m = hf_values(lambda n, v: [0.01 * x for x in v])
    hf_v = hf_values(lambda n, v: [abs(x) * 1e-3 for x in v])
    lit_m, lit_v = lit_state_dict(hf_m), lit_state_dict(hf_v)
    for name, moments in (("exp_avg", hf_m), ("exp_avg_sq", hf_v)):
        ref = os.path.join(HERE, "ref-lit-" + name)
        write_config(ref, False, "float32")
        write_safetensors(os.path.join(ref, "model.safetensors"), moments, "F32")
    key = [0]

    def tensor(vals, shape):
        key[0] += 1
        stride = (shape[1], 1) if len(shape) == 2 else (1,) if len(shape) == 1 else ()
        return Tensor(Storage(str(key[0] - 1), "FloatStorage", encode(vals, "FloatStorage")), 0, shape, stride)

    model = collections.OrderedDict((n, tensor(v, s)) for n, (v, s) in lit.items())
    # lit-gpt's named_parameters() order: GPT creates lm_head before transformer
    order = ["lm_head.weight"] + [n for n in lit if n != "lm_head.weight"]
    for keying in ("index", "name"):
        state = {}
        for i, n in enumerate(order):
            shape = lit[n][1]
            state[i if keying == "index" else n] = {"step": tensor([120.0], ()), "exp_avg": tensor(lit_m[n][0], shape),
                                                     "exp_avg_sq": tensor(lit_v[n][0], shape)}
        group = {"lr": 3e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1, "amsgrad": False, "maximize": False,
                 "foreach": False, "capturable": False, "differentiable": False, "fused": None,
                 "params": list(range(len(order))) if keying == "index" else order}
        ckpt = {"model": model, "optimizer": {"state": state, "param_groups": [group]},
                "hparams": {"model_name": "lit-test", "learning_rate": 4e-4, "global_batch_size": 8},
                "iter_num": 480, "step_count": 120}
        torch_save(os.path.join(HERE, "lit-%s-keyed.pth" % keying), ckpt, archive="lit-%s-keyed" % keying)
    with open(os.path.join(HERE, "lit-config.json"), "w") as f:
        json.dump(dict(architectures=["LlamaForCausalLM"], model_type="llama", tie_word_embeddings=False, **CONFIG), f, indent=1)


class Payload:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def hostile_fixtures():
    d = os.path.join(HERE, "hostile")
    os.makedirs(d, exist_ok=True)
    touch = "touch " + MARKER
    # a __reduce__ payload: os.system pickles as posix.system on Linux
    raw_pickle_zip(os.path.join(d, "posix-system.bin"), pickle.dumps({"w": Payload(os.system, touch)}, protocol=2))
    raw_pickle_zip(os.path.join(d, "os-system.bin"), b"\x80\x02}q\x00X\x01\x00\x00\x00wcos\nsystem\nX"
                   + struct.pack("<I", len(touch)) + touch.encode() + b"\x85Rs.")
    raw_pickle_zip(os.path.join(d, "builtins-eval.bin"),
                   pickle.dumps(Payload(eval, "open(%r, 'w').close()" % MARKER), protocol=3))
    raw_pickle_zip(os.path.join(d, "stack-global.bin"), pickle.dumps(Payload(os.system, touch), protocol=4))
    # INST names its callable inline: os.system()
    raw_pickle_zip(os.path.join(d, "inst.bin"), b"(ios\nsystem\n.")
    # OBJ after an allowed global, so the opcode itself is what is refused
    raw_pickle_zip(os.path.join(d, "obj.bin"), b"\x80\x02(ccollections\nOrderedDict\no.")


def damaged_fixtures():
    d = os.path.join(HERE, "damaged")
    os.makedirs(d, exist_ok=True)
    good = os.path.join(HERE, "fp32", "pytorch_model.bin")
    with open(good, "rb") as f:
        whole = f.read()
    with open(os.path.join(d, "truncated.bin"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    rows, cols = 32, 16
    vals = values("model.embed_tokens.weight", rows * cols)
    # the persistent id claims fewer values than the tensor spans
    short = Storage("0", "FloatStorage", encode(vals[:100], "FloatStorage"))
    torch_save(os.path.join(d, "short-storage.bin"), {"model.embed_tokens.weight": Tensor(short, 0, (rows, cols), (cols, 1))})
    # the persistent id claims all values but the entry holds fewer bytes
    lying = Storage("0", "FloatStorage", encode(vals[:100], "FloatStorage"), numel=rows * cols)
    torch_save(os.path.join(d, "short-entry.bin"), {"model.embed_tokens.weight": Tensor(lying, 0, (rows, cols), (cols, 1))})
    odd = Storage("0", "ComplexFloatStorage", bytes(8 * rows * cols))
    torch_save(os.path.join(d, "complex.bin"), {"model.embed_tokens.weight": Tensor(odd, 0, (rows, cols), (cols, 1))})
    # a row stride of 2^62: (rows - 1) x 2^62 wraps past 2^63 to a small extent, so an unchecked
    # product would pass the storage bound and read every row from row 0
    whole_storage = Storage("0", "FloatStorage", encode(vals, "FloatStorage"))
    torch_save(os.path.join(d, "overflow-stride.bin"),
               {"model.embed_tokens.weight": Tensor(whole_storage, 0, (rows, cols), (2 ** 62, 1))})
    # one byte of the storage entry changed after the zip recorded its CRC-32 (entries are stored, not deflated)
    flipped = os.path.join(d, "crc-flip.bin")
    torch_save(flipped, {"model.embed_tokens.weight": Tensor(whole_storage, 0, (rows, cols), (cols, 1))})
    with zipfile.ZipFile(flipped) as z:
        info = z.getinfo("archive/data/0")
    with open(flipped, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", f.read(4))
        at = info.header_offset + 30 + name_length + extra_length + 100
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ 0x40]))


if __name__ == "__main__":
    model_fixture("fp32", "FloatStorage", "F32", tied=False, shards=1)
    model_fixture("fp16", "HalfStorage", "F16", tied=False, shards=1)
    model_fixture("bf16-sharded-tied", "BFloat16Storage", "BF16", tied=True, shards=3)
    lit_fixtures()
    hostile_fixtures()
    damaged_fixtures()
