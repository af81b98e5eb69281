"""A Llama-architecture decoder in plain PyTorch, for small models on a CPU.

Why not transformers: importing its model classes costs about 3 s on a
2-core machine (it pulls in torch's compiler and distributed packages),
longer than the whole answer of a 135M model takes to write. This module
needs only `torch` and the model folder's `config.json` and safetensors
files. It computes exactly what `transformers.LlamaForCausalLM` computes
(tests/test_engine_torch.py compares logits and greedy tokens with it);
anything it does not implement (rope scaling, biases, other architectures)
is refused with a message, never approximated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mathagent.engines.base import EngineError

SUPPORTED = ("LlamaForCausalLM",)


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    tie_word_embeddings: bool
    max_position_embeddings: int

    @classmethod
    def load(cls, folder: Path) -> LlamaConfig:
        try:
            raw: dict[str, Any] = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EngineError(f"{folder} has no readable config.json: {exc}") from exc
        architectures = raw.get("architectures") or []
        if not any(a in SUPPORTED for a in architectures):
            raise EngineError(
                f"the torch engine runs Llama-architecture models; {folder} is {', '.join(architectures) or 'unknown'}",
                hint="use --engine vllm for other architectures",
            )
        rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
            raise EngineError(
                f"the torch engine does not implement rope scaling {rope.get('rope_type') or rope.get('type')!r}",
                hint="use --engine vllm for this model",
            )
        if raw.get("attention_bias") or raw.get("mlp_bias") or raw.get("hidden_act", "silu") != "silu":
            raise EngineError(
                "the torch engine implements plain Llama (no biases, SiLU)", hint="use --engine vllm for this model"
            )
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=int(raw.get("head_dim") or hidden // heads),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(rope.get("rope_theta") or raw.get("rope_theta") or 10000.0),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            max_position_embeddings=int(raw.get("max_position_embeddings", 2048)),
        )


@dataclass
class _Layer:
    attn_norm: torch.Tensor
    qkv: torch.Tensor  # q, k and v projections stacked: one matmul instead of three
    o: torch.Tensor
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor  # gate and up projections stacked
    down: torch.Tensor


class KVCache:
    """Keys and values of every layer for a batch, preallocated to `capacity` positions."""

    def __init__(self, config: LlamaConfig, batch: int, capacity: int, dtype: torch.dtype) -> None:
        shape = (batch, config.num_kv_heads, capacity, config.head_dim)
        self.keys = [torch.empty(shape, dtype=dtype) for _ in range(config.num_layers)]
        self.values = [torch.empty(shape, dtype=dtype) for _ in range(config.num_layers)]
        self.length = 0
        self.capacity = capacity


class LlamaModel:
    """Weights and the forward pass; no sampling, no tokenizer."""

    def __init__(self, config: LlamaConfig, weights: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
        self.config = config
        self.dtype = dtype

        def w(name: str) -> torch.Tensor:
            try:
                return weights[name].to(dtype)
            except KeyError as exc:
                raise EngineError(f"the model's weights lack {name}") from exc

        self.embed = w("model.embed_tokens.weight")
        self.norm = w("model.norm.weight")
        self.lm_head = self.embed if config.tie_word_embeddings else w("lm_head.weight")
        self.layers = []
        for i in range(config.num_layers):
            p = f"model.layers.{i}."
            qkv = torch.cat([w(p + f"self_attn.{x}_proj.weight") for x in "qkv"])
            gate_up = torch.cat([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")])
            self.layers.append(
                _Layer(
                    attn_norm=w(p + "input_layernorm.weight"),
                    qkv=qkv,
                    o=w(p + "self_attn.o_proj.weight"),
                    mlp_norm=w(p + "post_attention_layernorm.weight"),
                    gate_up=gate_up,
                    down=w(p + "mlp.down_proj.weight"),
                )
            )
        half = config.head_dim // 2
        self.inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, half, dtype=torch.float32) * 2 / config.head_dim))

    @classmethod
    def load(cls, folder: Path, dtype: torch.dtype = torch.float32) -> LlamaModel:
        from safetensors.torch import load_file

        config = LlamaConfig.load(folder)
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise EngineError(f"{folder} has no .safetensors weights", hint="use --engine vllm for other formats")
        weights: dict[str, torch.Tensor] = {}
        for file in files:
            weights.update(load_file(str(file)))
        return cls(config, weights, dtype)

    def new_cache(self, batch: int, capacity: int) -> KVCache:
        return KVCache(self.config, batch, capacity, self.dtype)

    @torch.inference_mode()
    def forward(
        self, tokens: torch.Tensor, positions: torch.Tensor, key_valid: torch.Tensor, cache: KVCache
    ) -> torch.Tensor:
        """Logits of the last position of each row, after feeding `tokens` [B, T].

        `positions` [B, T] are each token's position in its own sequence (left
        padding does not count); `key_valid` [B, cache.length + T] says which
        cache slots hold real tokens (False for padding).
        """
        c = self.config
        batch, steps = tokens.shape
        start, end = cache.length, cache.length + steps
        if end > cache.capacity:
            raise EngineError(f"the KV cache holds {cache.capacity} positions, {end} were needed")
        x = F.embedding(tokens, self.embed)
        angles = positions.to(torch.float32)[..., None] * self.inv_freq  # [B, T, D/2]
        angles = torch.cat([angles, angles], dim=-1)[:, None]  # [B, 1, T, D]
        cos, sin = angles.cos().to(self.dtype), angles.sin().to(self.dtype)
        # slot s is visible to the query at slot start + t when s <= start + t and s is not padding
        slots, queries = torch.arange(end), start + torch.arange(steps)
        causal = slots[None, :] <= queries[:, None]  # [T, S]
        mask = causal[None, None] & key_valid[:, None, None, :end]  # [B, 1, T, S]
        # a padding query sees itself: a row with nothing visible would give NaN, and NaN values
        # poison later layers even where masked (0 * NaN)
        mask = mask | (slots[None, :] == queries[:, None])[None, None]
        q_size, kv_size = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        for i, layer in enumerate(self.layers):
            h = _rms_norm(x, layer.attn_norm, c.rms_norm_eps)
            q, k, v = (h @ layer.qkv.T).split([q_size, kv_size, kv_size], dim=-1)
            q = q.view(batch, steps, c.num_heads, c.head_dim).transpose(1, 2)
            k = k.view(batch, steps, c.num_kv_heads, c.head_dim).transpose(1, 2)
            v = v.view(batch, steps, c.num_kv_heads, c.head_dim).transpose(1, 2)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cache.keys[i][:, :, start:end] = k
            cache.values[i][:, :, start:end] = v
            attn = _attention(q, cache.keys[i][:, :, :end], cache.values[i][:, :, :end], mask)
            x = x + attn.transpose(1, 2).reshape(batch, steps, q_size) @ layer.o.T
            h = _rms_norm(x, layer.mlp_norm, c.rms_norm_eps)
            gate, up = (h @ layer.gate_up.T).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ layer.down.T
        cache.length = end
        last = _rms_norm(x[:, -1], self.norm, c.rms_norm_eps)
        return (last @ self.lm_head.T).float()


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention: q [B, H, T, D] over k, v [B, KV, S, D], without copying k and v per head.

    Written out because torch's CPU flash kernel takes about 1.7 ms per call for one decoding step
    of a small model, several times the matmuls themselves."""
    batch, heads, steps, dim = q.shape
    kv_heads, length = k.shape[1], k.shape[2]
    group = heads // kv_heads
    q = q.reshape(batch, kv_heads, group * steps, dim)
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dim))  # [B, KV, G*T, S]
    scores = scores.view(batch, kv_heads, group, steps, length).float()
    scores = scores.masked_fill(~mask[:, :, None], float("-inf"))  # mask [B, 1, T, S] -> [B, 1, 1, T, S]
    weights = scores.softmax(dim=-1).to(v.dtype).view(batch, kv_heads, group * steps, length)
    return (weights @ v).view(batch, heads, steps, dim)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # in float32 as transformers does, then back: bf16 models would drift otherwise
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)
