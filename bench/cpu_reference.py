#!/usr/bin/env python3
"""References for `routelab bench cpu` (spawned by it; prints one JSON object on stdout).

  gemm:    numpy float32 matmul (OpenBLAS sgemm) on [n×K]·[N×K]ᵀ for each n.
  prefill: a PyTorch eager float32 re-implementation of Hugging Face's OLMoE forward (eager attention, the expert
           loop with index_add_) over the bench's safetensors checkpoint; writes the logits as raw float32.
Needs python3-numpy (gemm) and python3-torch (prefill) from Debian's apt.
"""
import json
import os
import struct
import sys
import time

import numpy as np


def gemm(args):
    K, N, reps = args['K'], args['N'], args['reps']
    rng = np.random.default_rng(0)
    w = rng.standard_normal((N, K), dtype=np.float32)
    out = {}
    for n in args['sizes']:
        x = rng.standard_normal((n, K), dtype=np.float32)
        x @ w.T
        best = float('inf')
        for _ in range(reps):
            t = time.perf_counter()
            x @ w.T
            best = min(best, time.perf_counter() - t)
        out[str(n)] = 2 * n * K * N / best / 1e9
    blas = 'unknown'
    try:
        import threadpoolctl  # noqa: F401 (optional)
        blas = threadpoolctl.threadpool_info()[0].get('internal_api', 'unknown')
    except Exception:
        pass
    return {'gflops': out, 'numpy': np.__version__, 'blas': blas}


def read_checkpoint(d):
    """Every tensor of a checkpoint directory: model.safetensors, or the shards its index lists."""
    single = os.path.join(d, 'model.safetensors')
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(d, 'model.safetensors.index.json')) as f:
        shards = sorted(set(json.load(f)['weight_map'].values()))
    tensors = {}
    for shard in shards:
        tensors.update(read_safetensors(os.path.join(d, shard)))
    return tensors


def read_safetensors(path):
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
    base = 8 + n
    raw = np.memmap(path, dtype=np.uint8, mode='r')
    tensors = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        buf = raw[base + a: base + b]
        if e['dtype'] == 'BF16':
            arr = (buf.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif e['dtype'] == 'F16':
            arr = buf.view(np.float16).astype(np.float32)
        else:
            arr = np.array(buf.view(np.float32))
        tensors[name] = arr.reshape(e['shape'])
    return tensors


def prefill(args):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(args['threads'])
    cfg = json.load(open(args['config']))
    t = {k: torch.from_numpy(v) for k, v in read_checkpoint(args['weights']).items()}
    H, nh, L, E = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_hidden_layers'], cfg['num_experts']
    nkv = cfg.get('num_key_value_heads', nh)
    hd, top_k, eps = H // nh, cfg['num_experts_per_tok'], cfg.get('rms_norm_eps', 1e-5)
    theta = cfg.get('rope_theta', 10000.0)

    def rms(x, w):
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + eps))

    def rotate_half(x):
        return torch.cat((-x[..., hd // 2:], x[..., : hd // 2]), dim=-1)

    def forward(ids):
        B, S = ids.shape
        x = F.embedding(ids, t['model.embed_tokens.weight'])
        inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
        freqs = torch.outer(torch.arange(S).float(), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((S, S), float('-inf')).triu(1)
        for l in range(L):
            p = f'model.layers.{l}'
            h = rms(x, t[f'{p}.input_layernorm.weight'])
            q = rms(F.linear(h, t[f'{p}.self_attn.q_proj.weight']), t[f'{p}.self_attn.q_norm.weight'])
            k = rms(F.linear(h, t[f'{p}.self_attn.k_proj.weight']), t[f'{p}.self_attn.k_norm.weight'])
            v = F.linear(h, t[f'{p}.self_attn.v_proj.weight'])
            q = q.view(B, S, nh, hd).transpose(1, 2)
            k = k.view(B, S, nkv, hd).transpose(1, 2)
            v = v.view(B, S, nkv, hd).transpose(1, 2)
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            if nkv != nh:
                k = k.repeat_interleave(nh // nkv, dim=1)
                v = v.repeat_interleave(nh // nkv, dim=1)
            w = torch.matmul(q, k.transpose(2, 3)) / (hd ** 0.5) + mask
            w = F.softmax(w, dim=-1, dtype=torch.float32)
            o = torch.matmul(w, v).transpose(1, 2).reshape(B, S, H)
            x = x + F.linear(o, t[f'{p}.self_attn.o_proj.weight'])
            # OlmoeSparseMoeBlock
            h = rms(x, t[f'{p}.post_attention_layernorm.weight']).view(-1, H)
            router_logits = F.linear(h, t[f'{p}.mlp.gate.weight'])
            rw = F.softmax(router_logits, dim=1, dtype=torch.float)
            rw, selected = torch.topk(rw, top_k, dim=-1)
            if cfg.get('norm_topk_prob', False):
                rw = rw / rw.sum(dim=-1, keepdim=True)
            final = torch.zeros_like(h)
            expert_mask = F.one_hot(selected, num_classes=E).permute(2, 1, 0)
            for e in range(E):
                idx, top_x = torch.where(expert_mask[e])
                if top_x.numel() == 0:
                    continue
                cur = h[None, top_x].reshape(-1, H)
                q_ = f'{p}.mlp.experts.{e}'
                y = F.linear(F.silu(F.linear(cur, t[f'{q_}.gate_proj.weight'])) * F.linear(cur, t[f'{q_}.up_proj.weight']),
                             t[f'{q_}.down_proj.weight'])
                final.index_add_(0, top_x, y * rw[top_x, idx, None])
            x = x + final.view(B, S, H)
        x = rms(x, t['model.norm.weight'])
        return F.linear(x, t['lm_head.weight'])

    results = []
    with torch.no_grad():
        forward(torch.zeros((1, 8), dtype=torch.int64))  # warm-up
        for run in args['runs']:
            ids = torch.from_numpy(np.fromfile(run['ids'], dtype=np.int32).astype(np.int64).reshape(run['batch'], run['length']))
            start = time.perf_counter()
            logits = forward(ids)
            seconds = time.perf_counter() - start
            logits.numpy().astype(np.float32).tofile(run['logits'])
            results.append({'batch': run['batch'], 'length': run['length'], 'seconds': seconds,
                            'tokens_per_s': run['batch'] * run['length'] / seconds})
            del logits
    import resource
    return {'runs': results, 'torch': torch.__version__, 'threads': torch.get_num_threads(),
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == '__main__':
    request = json.loads(sys.argv[1])
    result = gemm(request) if request['mode'] == 'gemm' else prefill(request)
    print(json.dumps(result))
