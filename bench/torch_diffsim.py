#!/usr/bin/env python3
"""The DiffSim pair of bench/diffsim.ts in PyTorch + diffusers, on identical shapes.

Random-weight SD1.5-shaped models (UNet2DConditionModel.from_config and AutoencoderKL.from_config
of the configs in test/fixtures/manifests, CLIP's text transformer), fp32 and fp16, on one S×S pair
(default 512) as the official DiffSim code runs it:
  text      CLIP text encoder on the CFG batch of 2×77 tokens (once per metric; not in a pair)
  vae       AutoencoderKL.encode of [1, 3, S, S], latent_dist.sample() × 0.18215
  unetFull  the whole U-Net on [2, 4, S/8, S/8] with forward hooks recording the hooked attn1's
            to_q/to_k/to_v outputs (what the official code runs)
  unetStop  the same, stopped by a forward hook on that attn1 that raises once it has run (as
            bench/diffsim.ts stops: right after the hooked module)
  aas       the four SDPAs O_AB, O_AA, O_BA, O_BB over 8 heads and the two cosines
  pair      2× (vae + add noise + unetStop) + aas;  pair_full: the same with unetFull
Timed with CUDA events (wall clock on the CPU), after a warm-up, mean of --iters runs.

Offline: `bash bench/torch-deps.sh` exports diffusers 0.29.2, huggingface_hub 0.25.2 and Debian's
pure-Python dependencies into .torchdeps/, which this script puts on sys.path. Compiled modules
that diffusers imports but a from_config run never uses (safetensors, regex, PIL) can be stood in
for with --stub-missing; anything else missing ends the run at once with a message naming it.

  python3 bench/torch_diffsim.py [--size S] [--iters N] [--dtypes fp32,fp16] [--device cuda]
                                 [--out FILE] [--stub-missing] [--dry-run]
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MANIFESTS = os.path.join(ROOT, "test", "fixtures", "manifests")
DEPS = os.path.join(ROOT, ".torchdeps")
MODULE = "up_blocks.1.attentions.2.transformer_blocks.0.attn1"  # DiffSim's default hook
TIMESTEP = 401  # step 600 of the official defaults
HEADS = 8
TOKENS = 77
# Modules diffusers imports at load time whose contents a from_config run never touches.
STUBBABLE = ("safetensors", "regex", "PIL")


def config(name):
    with open(os.path.join(MANIFESTS, f"{name}.config.json")) as f:
        return json.load(f)


def shapes(size):
    lat = size // 8
    te = config("sd15-text-encoder")
    unet = config("sd15-unet")
    return {
        "text": {"input_ids": [2, TOKENS], "last_hidden_state": [2, TOKENS, te["hidden_size"]]},
        "vae": {"image": [1, 3, size, size], "latent": [1, 4, lat, lat]},
        "unet": {"sample": [2, unet["in_channels"], lat, lat], "encoder_hidden_states": [2, TOKENS, unet["cross_attention_dim"]], "timestep": TIMESTEP, "hook": MODULE},
        "qkv": {"tokens": (lat // 2) ** 2, "channels": 640, "shape": [2, (lat // 2) ** 2, 640], "heads": HEADS},
    }


def setup_path(stub_missing):
    """Vendored sources first, Debian's pure-Python packages last; fails (or stubs) on what is missing."""
    if os.path.isdir(os.path.join(DEPS, "python")):
        sys.path.insert(0, os.path.join(DEPS, "python"))
    deb = os.path.join(DEPS, "deb", "root", "usr", "lib", "python3", "dist-packages")
    if os.path.isdir(deb):
        sys.path.append(deb)
    needed = ["torch", "numpy", "requests", "filelock", "huggingface_hub", "diffusers", "safetensors", "regex", "PIL", "yaml", "tqdm", "packaging", "fsspec"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    stubbed = []
    for m in list(missing):
        if m in STUBBABLE and stub_missing:
            install_stub(m)
            stubbed.append(m)
            missing.remove(m)
    if missing:
        hint = " (run bash bench/torch-deps.sh and carry .torchdeps)" if any(m in ("diffusers", "huggingface_hub", "requests", "filelock") for m in missing) else ""
        stub_hint = f"; {', '.join(m for m in missing if m in STUBBABLE)} can be stood in for with --stub-missing" if any(m in STUBBABLE for m in missing) else ""
        sys.exit(f"torch_diffsim: missing Python modules: {', '.join(missing)}{hint}{stub_hint}")
    return stubbed


class _Anything:
    """Stands in for any attribute, call or subscript of a stubbed module (never used for real work)."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, k):
        if k.startswith("__") and k.endswith("__"):
            raise AttributeError(k)
        return _Anything(f"{self._name}.{k}")

    def __call__(self, *a, **k):
        raise RuntimeError(f"{self._name} is a stub (--stub-missing): this run cannot use it")

    def __getitem__(self, k):
        return _Anything(f"{self._name}[{k!r}]")

    def __iter__(self):
        return iter(())

    def __mro_entries__(self, bases):
        return (object,)


class _StubModule(types.ModuleType):
    def __getattr__(self, k):
        if k.startswith("__") and k.endswith("__"):
            raise AttributeError(k)
        return _Anything(f"{self.__name__}.{k}")


def install_stub(name):
    import importlib.machinery

    class Finder:
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname == name or fullname.startswith(name + "."):
                return importlib.machinery.ModuleSpec(fullname, Loader, is_package=True)
            return None

    class Loader:
        @staticmethod
        def create_module(spec):
            m = _StubModule(spec.name)
            m.__path__ = []
            m.__version__ = "10.0.0" if name == "PIL" else "0.4.0"
            return m

        @staticmethod
        def exec_module(module):
            pass

    sys.meta_path.append(Finder)


def clip_text_model(torch, cfg):
    """CLIPTextModel from transformers when it is installed, else the same transformer in plain torch
    (embeddings, pre-LN encoder layers with causal self-attention and quick_gelu MLPs, final LN)."""
    if importlib.util.find_spec("transformers") is not None:
        try:
            from transformers import CLIPTextConfig, CLIPTextModel

            fields = {k: v for k, v in cfg.items() if not k.startswith("_")}
            return CLIPTextModel(CLIPTextConfig(**fields)), "transformers"
        except Exception as e:  # noqa: BLE001 — an old or partial transformers: use the plain one
            print(f"(transformers unusable: {e}; plain-torch CLIP text transformer)")
    nn = torch.nn
    F = torch.nn.functional
    d, heads, layers = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    inner, eps = cfg["intermediate_size"], cfg.get("layer_norm_eps", 1e-5)

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_norm1 = nn.LayerNorm(d, eps=eps)
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
            self.layer_norm2 = nn.LayerNorm(d, eps=eps)
            self.fc1, self.fc2 = nn.Linear(d, inner), nn.Linear(inner, d)

        def forward(self, x):
            b, n, _ = x.shape
            h = self.layer_norm1(x)
            split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
            a = sdpa(torch, split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h)), causal=True)
            x = x + self.out_proj(a.transpose(1, 2).reshape(b, n, d))
            h = self.fc1(self.layer_norm2(x))
            return x + self.fc2(h * torch.sigmoid(1.702 * h))

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_embedding = nn.Embedding(cfg["vocab_size"], d)
            self.position_embedding = nn.Embedding(cfg["max_position_embeddings"], d)
            self.layers = nn.ModuleList(Layer() for _ in range(layers))
            self.final_layer_norm = nn.LayerNorm(d, eps=eps)

        def forward(self, ids):
            x = self.token_embedding(ids) + self.position_embedding(torch.arange(ids.shape[1], device=ids.device))[None]
            for layer in self.layers:
                x = layer(x)
            return (self.final_layer_norm(x),)

    return Text(), "plain torch"


class Stop(Exception):
    pass


def sdpa(torch, q, k, v, causal=False):
    """softmax(q·kᵀ/√d [+ causal mask])·v; PyTorch's fused kernel where it exists (2.0 and later)."""
    F = torch.nn.functional
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    s = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return s.softmax(-1) @ v


def run(torch, diffusers, dtype_name, a, log):
    dev = torch.device(a.device)
    dtype = torch.float16 if dtype_name == "fp16" else torch.float32
    torch.manual_seed(0)
    F = torch.nn.functional
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (PyTorch's default too)
        torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for convolutions
    unet = diffusers.UNet2DConditionModel.from_config(config("sd15-unet")).to(dev, dtype).eval()
    vae = diffusers.AutoencoderKL.from_config(config("sd15-vae")).to(dev, dtype).eval()
    text, text_impl = clip_text_model(torch, config("sd15-text-encoder"))
    text = text.to(dev, dtype).eval()
    S, lat = a.size, a.size // 8
    cuda = dev.type == "cuda"

    attn = unet.get_submodule(MODULE)
    captured = {}
    for name in ("to_q", "to_k", "to_v"):
        getattr(attn, name).register_forward_hook(lambda m, i, o, name=name: captured.__setitem__(name, o))
    stop = {"on": False}

    def stop_hook(m, i, o):
        if stop["on"]:
            raise Stop()

    attn.register_forward_hook(stop_hook)
    ids = torch.randint(0, 49408, (2, TOKENS), device=dev)
    with torch.no_grad():
        states = text(ids)[0]
    alphas = torch.cumprod(1 - torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2, 0)
    ab = float(alphas[TIMESTEP])
    images = [torch.rand(1, 3, S, S, device=dev, dtype=dtype) * 2 - 1 for _ in range(2)]

    def t_text():
        text(ids)

    def t_vae(img=images[0]):
        return vae.encode(img).latent_dist.sample() * 0.18215

    def t_unet(z, early):
        stop["on"] = early
        captured.clear()
        try:
            unet(torch.cat([z, z]), TIMESTEP, encoder_hidden_states=states)
        except Stop:
            pass
        return captured["to_q"], captured["to_k"], captured["to_v"]

    def embed(img, early):
        z0 = t_vae(img)
        zt = ab**0.5 * z0 + (1 - ab) ** 0.5 * torch.randn_like(z0)
        return t_unet(zt, early)

    def split(t):
        b, n, c = t.shape
        return t.view(b, n, HEADS, c // HEADS).transpose(1, 2)

    def aas(ea, eb):
        att = lambda q, kv: sdpa(torch, split(q), split(kv[1]), split(kv[2]))  # noqa: E731
        o_ab, o_aa, o_ba, o_bb = att(ea[0], eb), att(ea[0], ea), att(eb[0], ea), att(eb[0], eb)
        cos = lambda x, y: F.cosine_similarity(x.flatten().float(), y.flatten().float(), dim=0)  # noqa: E731
        return float((cos(o_ab, o_aa) + cos(o_ba, o_bb)) / 2)

    def timed(fn):
        with torch.no_grad():
            fn()
            if cuda:
                torch.cuda.synchronize()
            total = 0.0
            for _ in range(a.iters):
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    end.record()
                    torch.cuda.synchronize()
                    total += start.elapsed_time(end)
                else:
                    t0 = time.perf_counter()
                    fn()
                    total += (time.perf_counter() - t0) * 1000
            return total / a.iters

    with torch.no_grad():
        z = t_vae()
        ea, eb = embed(images[0], True), embed(images[1], True)
    out = {"dtype": dtype_name, "text_impl": text_impl, "stages": {}}
    st = out["stages"]
    st["text"] = timed(t_text)
    st["vae"] = timed(t_vae)
    st["unetStop"] = timed(lambda: t_unet(z, True))
    st["unetFull"] = timed(lambda: t_unet(z, False))
    st["aas"] = timed(lambda: aas(ea, eb))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    out["pair_ms"] = timed(lambda: aas(embed(images[0], True), embed(images[1], True)))
    if cuda:
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
    out["pair_full_ms"] = timed(lambda: aas(embed(images[0], False), embed(images[1], False)))
    with torch.no_grad():
        out["score"] = aas(embed(images[0], True), embed(images[1], True))
    out["qkv_shape"] = list(ea[0].shape)
    for k, v in st.items():
        log(f"  {dtype_name} {k:9s} {v:10.2f} ms")
    log(f"  {dtype_name} pair      {out['pair_ms']:10.2f} ms (early stop); {out['pair_full_ms']:.2f} ms (full U-Net, official)")
    del unet, vae, text
    if cuda:
        torch.cuda.empty_cache()
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--dtypes", default="fp32,fp16")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "torch-diffsim.json"))
    p.add_argument("--stub-missing", action="store_true", help=f"stand in for missing {', '.join(STUBBABLE)} (imported, never used here)")
    p.add_argument("--dry-run", action="store_true", help="print the shapes of each stage and exit (needs no torch)")
    a = p.parse_args()
    if a.size % 8 or a.size < 64:
        sys.exit("torch_diffsim: --size must be a multiple of 8, at least 64")
    if a.dry_run:
        print(json.dumps({"size": a.size, "dtypes": a.dtypes.split(","), "shapes": shapes(a.size)}))
        return
    stubbed = setup_path(a.stub_missing)
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("torch_diffsim: CUDA is not available (use --device cpu for a local check)")
    diffusers = importlib.import_module("diffusers")
    dev_name = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, {dev_name}; pair at {a.size}² ({'stubbed: ' + ', '.join(stubbed) if stubbed else 'no stubs'})", flush=True)
    result = {"adapter": dev_name, "torch": torch.__version__, "diffusers": diffusers.__version__, "size": a.size, "iters": a.iters, "module": MODULE, "timestep": TIMESTEP, "stubbed": stubbed, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for d in a.dtypes.split(","):
        result[d] = run(torch, diffusers, d, a, lambda s: print(s, flush=True))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
