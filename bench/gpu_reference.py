#!/usr/bin/env python3
"""PyTorch eager reference for `routelab bench gpu` (spawned by it; prints one JSON object as its last stdout line).

The Hugging Face OLMoE forward (transformers' OlmoeForCausalLM, eager attention) re-implemented op for op:
RMSNorm computed in float32 and cast back (OlmoeRMSNorm), q/k RMSNorm over the whole projection, NeoX rotary with
float32 cos/sin cast to the compute dtype, eager attention (matmul, additive causal mask, float32 softmax, matmul),
and OlmoeSparseMoeBlock's expert loop (softmax in float32, top-k, one_hot mask, torch.where per expert, index_add_).
Weights are the bench's BF16 safetensors checkpoint (single file or sharded with an index), loaded with the
`safetensors` package when present, else a small header parser + numpy memmap; computed in each requested dtype
(bf16: what the HF model does on a GPU; f32: the weights widened exactly).

Request (argv[1], JSON): {weights: dir, device: 'cuda'|'cpu', dtypes: ['bf16','f32'], reps: N,
  runs: [{batch, length, ids: int32 file}], decode: {prompt: int32 file, ids: int32 file} | null, out: dir}
Per dtype it writes the last-position logits of each run as raw float32 (out/torch-<dtype>-<B>x<S>.f32) and the
last decode step's (out/torch-<dtype>-decode.f32).
"""
import json
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {'bf16': torch.bfloat16, 'f32': torch.float32}


def log(msg):
    print(f'gpu_reference: {msg}', file=sys.stderr, flush=True)


def weight_files(d):
    single = os.path.join(d, 'model.safetensors')
    if os.path.exists(single):
        return [single]
    with open(os.path.join(d, 'model.safetensors.index.json')) as f:
        return [os.path.join(d, s) for s in sorted(set(json.load(f)['weight_map'].values()))]


def load_weights(d, device, dtype):
    """Every tensor on `device` in `dtype`."""
    out = {}
    try:
        from safetensors import safe_open
    except ImportError:
        safe_open = None
    for path in weight_files(d):
        if safe_open is not None:
            with safe_open(path, framework='pt', device='cpu') as f:
                for name in f.keys():
                    out[name] = f.get_tensor(name).to(device=device).to(dtype)
            continue
        with open(path, 'rb') as f:
            (n,) = struct.unpack('<Q', f.read(8))
            header = json.loads(f.read(n))
        raw = np.memmap(path, dtype=np.uint8, mode='c')
        base = 8 + n
        for name, e in header.items():
            if name == '__metadata__':
                continue
            if e['dtype'] != 'BF16':
                raise SystemExit(f'{path}: {name} is {e["dtype"]}, expected BF16')
            a, b = e['data_offsets']
            t = torch.from_numpy(raw[base + a: base + b].view(np.int16)).view(torch.bfloat16).reshape(e['shape'])
            out[name] = t.to(device=device).to(dtype)
    return out


class Olmoe:
    def __init__(self, cfg, w):
        self.cfg, self.w = cfg, w
        self.H, self.nh, self.L, self.E = cfg['hidden_size'], cfg['num_attention_heads'], cfg['num_hidden_layers'], cfg['num_experts']
        self.nkv = cfg.get('num_key_value_heads') or self.nh
        self.hd = self.H // self.nh
        self.top_k, self.eps = cfg['num_experts_per_tok'], cfg.get('rms_norm_eps', 1e-5)
        self.theta = cfg.get('rope_theta', 10000.0)
        dev = next(iter(w.values())).device
        self.inv_freq = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64, device=dev).float() / self.hd))

    def rms(self, x, w):  # OlmoeRMSNorm
        dt = x.dtype
        x = x.to(torch.float32)
        var = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(var + self.eps)).to(dt)

    def rotate_half(self, x):
        return torch.cat((-x[..., self.hd // 2:], x[..., : self.hd // 2]), dim=-1)

    def moe(self, p, h):  # OlmoeSparseMoeBlock.forward
        w, H = self.w, self.H
        router_logits = F.linear(h, w[f'{p}.mlp.gate.weight'])
        rw = F.softmax(router_logits, dim=1, dtype=torch.float)
        rw, selected = torch.topk(rw, self.top_k, dim=-1)
        if self.cfg.get('norm_topk_prob', False):
            rw = rw / rw.sum(dim=-1, keepdim=True)
        rw = rw.to(h.dtype)
        final = torch.zeros_like(h)
        expert_mask = F.one_hot(selected, num_classes=self.E).permute(2, 1, 0)
        for e in range(self.E):
            idx, top_x = torch.where(expert_mask[e])
            if top_x.numel() == 0:
                continue
            cur = h[None, top_x].reshape(-1, H)
            q = f'{p}.mlp.experts.{e}'
            y = F.linear(F.silu(F.linear(cur, w[f'{q}.gate_proj.weight'])) * F.linear(cur, w[f'{q}.up_proj.weight']), w[f'{q}.down_proj.weight'])
            final.index_add_(0, top_x, (y * rw[top_x, idx, None]).to(h.dtype))
        return final

    def forward(self, ids, cache=None):
        """Last-position logits [B, V] as float32; `cache` (a list of per-layer [k, v], or []) grows by len(ids)."""
        w, H, nh, nkv, hd = self.w, self.H, self.nh, self.nkv, self.hd
        B, S = ids.shape
        past = 0 if not cache else cache[0][0].shape[2]
        x = F.embedding(ids, w['model.embed_tokens.weight'])
        pos = torch.arange(past, past + S, device=ids.device).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype)[None, None], emb.sin().to(x.dtype)[None, None]
        mask = None
        if S > 1:
            mask = torch.full((S, past + S), torch.finfo(x.dtype).min, device=ids.device, dtype=x.dtype).triu(past + 1)
        for l in range(self.L):
            p = f'model.layers.{l}'
            h = self.rms(x, w[f'{p}.input_layernorm.weight'])
            q = self.rms(F.linear(h, w[f'{p}.self_attn.q_proj.weight']), w[f'{p}.self_attn.q_norm.weight'])
            k = self.rms(F.linear(h, w[f'{p}.self_attn.k_proj.weight']), w[f'{p}.self_attn.k_norm.weight'])
            v = F.linear(h, w[f'{p}.self_attn.v_proj.weight'])
            q = q.view(B, S, nh, hd).transpose(1, 2)
            k = k.view(B, S, nkv, hd).transpose(1, 2)
            v = v.view(B, S, nkv, hd).transpose(1, 2)
            q, k = q * cos + self.rotate_half(q) * sin, k * cos + self.rotate_half(k) * sin
            if cache is not None:  # DynamicCache: concatenate along the sequence
                if len(cache) > l:
                    k = torch.cat((cache[l][0], k), dim=2)
                    v = torch.cat((cache[l][1], v), dim=2)
                    cache[l] = [k, v]
                else:
                    cache.append([k, v])
            if nkv != nh:
                k = k.repeat_interleave(nh // nkv, dim=1)
                v = v.repeat_interleave(nh // nkv, dim=1)
            a = torch.matmul(q, k.transpose(2, 3)) * (hd ** -0.5)
            if mask is not None:
                a = a + mask
            a = F.softmax(a, dim=-1, dtype=torch.float32).to(q.dtype)
            o = torch.matmul(a, v).transpose(1, 2).reshape(B, S, nh * hd)
            x = x + F.linear(o, w[f'{p}.self_attn.o_proj.weight'])
            h = self.rms(x, w[f'{p}.post_attention_layernorm.weight']).view(-1, H)
            x = x + self.moe(p, h).view(B, S, H)
        x = self.rms(x[:, -1:], w['model.norm.weight'])
        return F.linear(x, w['lm_head.weight'])[:, 0].float().cpu()


def read_ids(path, shape, device):
    return torch.from_numpy(np.fromfile(path, dtype=np.int32).astype(np.int64).reshape(shape)).to(device)


def main(req):
    device = req['device']
    if device == 'cpu':
        torch.set_num_threads(os.cpu_count() or 1)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    with open(os.path.join(req['weights'], 'config.json')) as f:
        cfg = json.load(f)
    results = []
    for name in req['dtypes']:
        dtype = DTYPES[name]
        if device == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        model = Olmoe(cfg, load_weights(req['weights'], device, dtype))
        sync()
        log(f'{name}: weights on {device} in {time.perf_counter() - t:.1f} s')
        runs = []
        with torch.no_grad():
            model.forward(torch.arange(1, 9, device=device)[None])  # warm-up
            for run in req['runs']:
                B, S = run['batch'], run['length']
                ids = read_ids(run['ids'], (B, S), device)
                logits = model.forward(ids)  # warm-up at this shape
                best = float('inf')
                for _ in range(req['reps']):
                    sync()
                    t = time.perf_counter()
                    logits = model.forward(ids)
                    sync()
                    best = min(best, time.perf_counter() - t)
                out = os.path.join(req['out'], f'torch-{name}-{B}x{S}.f32')
                logits.numpy().astype(np.float32).tofile(out)
                runs.append({'batch': B, 'length': S, 'seconds': best, 'tokens_per_s': B * S / best, 'logits': out})
                log(f'{name}: prefill {B}x{S} {best * 1000:.1f} ms')
            decode = None
            if req.get('decode'):
                warm = []
                model.forward(torch.arange(1, 5, device=device)[None], warm)
                for i in (5, 6):
                    model.forward(torch.tensor([[i]], device=device), warm)
                prompt = np.fromfile(req['decode']['prompt'], dtype=np.int32).astype(np.int64)
                steps = np.fromfile(req['decode']['ids'], dtype=np.int32).astype(np.int64).tolist()
                cache = []
                model.forward(torch.from_numpy(prompt)[None].to(device), cache)
                sync()
                t = time.perf_counter()
                for i in steps:  # each step's logits come back to the host, as a sampler needs them
                    logits = model.forward(torch.tensor([[i]], device=device), cache)
                seconds = time.perf_counter() - t
                out = os.path.join(req['out'], f'torch-{name}-decode.f32')
                logits.numpy().astype(np.float32).tofile(out)
                decode = {'tokens': len(steps), 'seconds': seconds, 'tokens_per_s': len(steps) / seconds, 'logits': out}
                log(f'{name}: decode {len(steps)} tokens {seconds * 1000:.1f} ms')
        peak = torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else None
        results.append({'dtype': name, 'runs': runs, 'decode': decode, 'peak_gpu_mem_mb': peak})
        del model
    name = torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu'
    return {'torch': torch.__version__, 'device': device, 'device_name': name, 'results': results,
            'threads': torch.get_num_threads(), 'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


if __name__ == '__main__':
    print(json.dumps(main(json.loads(sys.argv[1]))))
