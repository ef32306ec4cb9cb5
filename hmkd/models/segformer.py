"""SegFormer: the Mix Transformer (MiT) encoder and the all-MLP decoder (Xie et al., NeurIPS 2021).

Usage: model = build_model("segformer_b4", num_classes=19); out = model(images_bchw)

Module names follow NVlabs' ``mix_transformer.py`` so their ImageNet encoders (``mit_b0.pth`` .. ``mit_b5.pth``)
load without renaming; :func:`checkpoint_filter_fn` also reads Hugging Face ``SegformerForSemanticSegmentation``
state dicts and mmsegmentation 0.x / 1.x SegFormer checkpoints (``options.head: mmseg``, keys converted by
hmkd.models.mmseg_segformer_keys). Logits come at 1/4 of the input resolution; features are the four stage maps at
strides 4/8/16/32; ``taps`` asks for the HMKD authors' attention entries besides (hmkd.models.output.Tap).
Options (``model.options`` / ``teacher.options``): see :class:`SegFormerOptions`.
"""
import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import Tensor, nn

from hmkd.compat import HAS_SDPA, sdpa
from hmkd.config.typed import check_at_least, check_choice, check_positive
from hmkd.models.mmseg_segformer_keys import convert_mmseg_state_dict, is_mmseg_segformer
from hmkd.models.output import FeatureInfo, SegOutput, Tap, attention_taps
from hmkd.models.registry import register_model

log = logging.getLogger(__name__)
ATTENTION_KERNELS = ("eager", "sdpa")
HEADS = ("mlp", "mmseg")
MMSEG_DECODER_DIM = 256  # mmseg's SegformerHead configs use 256 channels for every MiT size


@dataclass
class SegFormerOptions:
    """``head``: ``mlp`` is the NVlabs / Hugging Face all-MLP decoder, ``mmseg`` is mmsegmentation's SegformerHead (1x1
    conv + BN + ReLU per stage instead of a linear layer), the head of mmseg's published checkpoints;
    ``decoder_dim``: decoder width (None: for ``mlp`` the variant's, 256 for B0/B1, 768 above; 256 for ``mmseg``, as
    mmseg's configs for every size);
    ``norm_eps`` / ``embed_norm_eps``: LayerNorm eps of the blocks and stage ends / of the patch embeddings and the
    spatial reductions (NVlabs: 1e-6 / 1e-5, Hugging Face: 1e-5 / 1e-5, mmseg: 1e-6 / 1e-6).
    The HMKD authors' attention features are not a model option: the loss terms that read them ask the forward
    for them (``tap`` of loss.terms.gla / hfa)."""

    retired_keys = {"stage3_features": ("output", "the authors' stage-3 features are read by the loss term: set "
                                                  "loss.terms.hfa.tap: attn_mean, or loss.terms.hfa.variant: authors")}

    head: str = "mlp"
    decoder_dim: Optional[int] = None
    num_heads: Tuple[int, int, int, int] = (1, 2, 5, 8)
    sr_ratios: Tuple[int, int, int, int] = (8, 4, 2, 1)
    drop_path_rate: float = 0.1
    decoder_dropout: float = 0.1
    norm_eps: float = 1e-6
    embed_norm_eps: float = 1e-5
    attention: str = "eager"

    def __post_init__(self):
        check_choice("head", self.head, HEADS)
        for name in ("norm_eps", "embed_norm_eps"):
            check_positive(name, getattr(self, name))
        if self.decoder_dim is not None:
            check_at_least("decoder_dim", self.decoder_dim, 1)
        for name in ("drop_path_rate", "decoder_dropout"):
            check_at_least(name, getattr(self, name), 0.0)
        check_choice("attention", self.attention, ATTENTION_KERNELS)


@dataclass
class SegFormerTinyOptions(SegFormerOptions):
    num_heads: Tuple[int, int, int, int] = (1, 2, 3, 4)


def tokens_to_map(tokens_bnc: Tensor, height: int, width: int) -> Tensor:
    """(B, N, C) -> (B, C, H, W). The transpose matters: reshaping tokens directly scrambles space and channels."""
    batch, _, channels = tokens_bnc.shape
    return tokens_bnc.transpose(1, 2).reshape(batch, channels, height, width)


class OverlapPatchEmbed(nn.Module):
    """Strided conv with overlapping windows (kernel > stride), then LayerNorm over channels."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, stride: int, norm_eps: float = 1e-5):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)

    def forward(self, x_bchw: Tensor) -> Tuple[Tensor, int, int]:
        x_bchw = self.proj(x_bchw)
        height, width = x_bchw.shape[2:]
        return self.norm(x_bchw.flatten(2).transpose(1, 2)), height, width


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys/values come from a map shrunk by ``sr_ratio`` (spatial reduction)."""

    def __init__(self, dim: int, num_heads: int, sr_ratio: int, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 norm_eps: float = 1e-5):
        super().__init__()
        if dim % num_heads:
            raise ValueError("attention width %d is not divisible by num_heads %d" % (dim, num_heads))
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.use_sdpa = False  # set for the whole model by SegFormer(attention=...)
        self.sr_ratio = sr_ratio
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        if sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=norm_eps)

    def forward(self, x_bnc: Tensor, height: int, width: int) -> Tensor:
        batch, num_tokens, dim = x_bnc.shape
        head_dim = dim // self.num_heads
        q = self.q(x_bnc).reshape(batch, num_tokens, self.num_heads, head_dim).permute(0, 2, 1, 3)
        source = x_bnc
        if self.sr_ratio > 1:
            source = self.sr(tokens_to_map(x_bnc, height, width)).flatten(2).transpose(1, 2)
            source = self.norm(source)
        kv = self.kv(source).reshape(batch, -1, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        if self.use_sdpa:
            drop = self.attn_drop.p if self.training else 0.0
            out = sdpa(q, kv[0], kv[1], self.scale, dropout_p=drop)
        else:
            attn = (q @ kv[0].transpose(-2, -1)) * self.scale
            out = self.attn_drop(attn.softmax(dim=-1)) @ kv[1]
        out = out.transpose(1, 2).reshape(batch, num_tokens, dim)
        return self.proj_drop(self.proj(out))


class DWConv(nn.Module):
    """Depthwise 3x3 conv on the token map: the positional cue of Mix-FFN (MiT has no position embeddings)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x_bnc: Tensor, height: int, width: int) -> Tensor:
        return self.dwconv(tokens_to_map(x_bnc, height, width)).flatten(2).transpose(1, 2)


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = DWConv(hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x_bnc: Tensor, height: int, width: int) -> Tensor:
        x_bnc = self.drop(self.act(self.dwconv(self.fc1(x_bnc), height, width)))
        return self.drop(self.fc2(x_bnc))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MixFFN(LN(x)), each with stochastic depth."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, drop_path: float,
                 norm_eps: float, drop: float = 0.0, attn_drop: float = 0.0, embed_norm_eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = EfficientSelfAttention(dim, num_heads, sr_ratio, attn_drop=attn_drop, proj_drop=drop,
                                           norm_eps=embed_norm_eps)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x_bnc: Tensor, height: int, width: int, with_entry: bool = False
                ) -> Tuple[Tensor, Optional[Tensor]]:
        """The block output and, with ``with_entry``, the HMKD authors' attention entry of the block: the attention
        branch computed a second time, ``attn(norm1(x))`` on x after the attention residual, before the MLP."""
        x_bnc = x_bnc + self.drop_path(self.attn(self.norm1(x_bnc), height, width))
        entry = self.attn(self.norm1(x_bnc), height, width) if with_entry else None
        x_bnc = x_bnc + self.drop_path(self.mlp(self.norm2(x_bnc), height, width))
        return x_bnc, entry


class MixVisionTransformer(nn.Module):
    """The MiT encoder: four stages of (overlapping patch embedding, blocks, LayerNorm)."""

    def __init__(self, embed_dims: Sequence[int], depths: Sequence[int], num_heads: Sequence[int],
                 sr_ratios: Sequence[int], mlp_ratio: float = 4.0, in_chans: int = 3, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1, norm_eps: float = 1e-6,
                 embed_norm_eps: float = 1e-5):
        super().__init__()
        self.depths = list(depths)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        first = 0
        for i, (dim, depth) in enumerate(zip(embed_dims, depths)):
            patch, stride = (7, 4) if i == 0 else (3, 2)
            setattr(self, "patch_embed%d" % (i + 1),
                    OverlapPatchEmbed(in_chans if i == 0 else embed_dims[i - 1], dim, patch, stride, embed_norm_eps))
            setattr(self, "block%d" % (i + 1), nn.ModuleList([
                Block(dim, num_heads[i], mlp_ratio, sr_ratios[i], rates[first + j], norm_eps, drop_rate,
                      attn_drop_rate, embed_norm_eps) for j in range(depth)]))
            setattr(self, "norm%d" % (i + 1), nn.LayerNorm(dim, eps=norm_eps))
            first += depth
        self.feature_info = [FeatureInfo(dim, 4 * 2 ** i) for i, dim in enumerate(embed_dims)]
        self.apply(_init_weights)

    def forward(self, x_bchw: Tensor, taps: Sequence[Tap] = ()) -> Tuple[List[Tensor], Dict[Tap, Tensor]]:
        """The four stage maps, and the requested attention taps as maps (only the entries they need are computed).

        A stage's entry list is [patch-embedding tokens, block 1's entry, ..., block d's entry]; ``attn_second_last``
        is its item -2 (block d-1's entry, or the patch-embedding tokens when the stage has one block), ``attn_mean``
        the mean of the d block entries."""
        features: List[Tensor] = []
        tapped: Dict[Tap, Tensor] = {}
        for i, depth in enumerate(self.depths):
            kinds = {tap.kind for tap in taps if tap.stage == i}
            tokens, height, width = getattr(self, "patch_embed%d" % (i + 1))(x_bchw)
            entries = {"attn_second_last": tokens} if "attn_second_last" in kinds and depth == 1 else {}
            entry_sum = None
            for j, block in enumerate(getattr(self, "block%d" % (i + 1))):
                second_last = "attn_second_last" in kinds and j == depth - 2
                tokens, entry = block(tokens, height, width, with_entry="attn_mean" in kinds or second_last)
                if second_last:
                    entries["attn_second_last"] = entry
                if "attn_mean" in kinds:
                    entry_sum = entry if entry_sum is None else entry_sum + entry
            if entry_sum is not None:
                entries["attn_mean"] = entry_sum / depth
            for kind, entry_bnc in entries.items():
                tapped[Tap(i, kind)] = tokens_to_map(entry_bnc, height, width)
            x_bchw = tokens_to_map(getattr(self, "norm%d" % (i + 1))(tokens), height, width)
            features.append(x_bchw)
        return features, tapped


def _init_weights(module: nn.Module) -> None:
    """NVlabs' initialisation: truncated normal for linears, fan-out normal for convs."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MLP(nn.Module):
    """Per-pixel linear layer of the all-MLP decoder."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x_bchw: Tensor) -> Tensor:
        height, width = x_bchw.shape[2:]
        return tokens_to_map(self.proj(x_bchw.flatten(2).transpose(1, 2)), height, width)


class AllMLPDecoder(nn.Module):
    """Unify widths with per-stage MLPs, upsample to stride 4, fuse (1x1 conv + BN + ReLU), classify."""

    def __init__(self, in_channels: Sequence[int], embed_dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.linear_c = nn.ModuleList([MLP(c, embed_dim) for c in in_channels])
        self.linear_fuse = nn.Conv2d(embed_dim * len(in_channels), embed_dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(embed_dim)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, features: List[Tensor]) -> Tensor:
        size = features[0].shape[2:]
        maps = [F.interpolate(mlp(feat), size=size, mode="bilinear", align_corners=False)
                for mlp, feat in zip(self.linear_c, features)]
        fused = F.relu(self.bn(self.linear_fuse(torch.cat(maps[::-1], dim=1))))
        return self.classifier(self.dropout(fused))


class ConvBNReLU(nn.Module):
    """1x1 conv without bias, BatchNorm, ReLU: mmcv's ConvModule as mmseg's SegformerHead builds it (same names)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_dim)

    def forward(self, x_bchw: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x_bchw)))


class ConvFusionDecoder(nn.Module):
    """mmseg's SegformerHead: per-stage 1x1 ConvModule to one width, upsample to stride 4, concatenate in stage order
    (the all-MLP decoder concatenates in reverse), fuse with a ConvModule, classify. mmseg's Cityscapes teachers
    were trained with this head, so their weights need it rather than the all-MLP decoder."""

    def __init__(self, in_channels: Sequence[int], embed_dim: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.convs = nn.ModuleList([ConvBNReLU(c, embed_dim) for c in in_channels])
        self.fusion_conv = ConvBNReLU(embed_dim * len(in_channels), embed_dim)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, features: List[Tensor]) -> Tensor:
        size = features[0].shape[2:]
        maps = [F.interpolate(conv(feat), size=size, mode="bilinear", align_corners=False)
                for conv, feat in zip(self.convs, features)]
        return self.classifier(self.dropout(self.fusion_conv(torch.cat(maps, dim=1))))


_DECODERS = {"mlp": AllMLPDecoder, "mmseg": ConvFusionDecoder}


class SegFormer(nn.Module):
    def __init__(self, num_classes: int, embed_dims: Sequence[int], depths: Sequence[int], decoder_dim: int,
                 num_heads: Sequence[int] = (1, 2, 5, 8), sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 drop_path_rate: float = 0.1, decoder_dropout: float = 0.1, norm_eps: float = 1e-6,
                 embed_norm_eps: float = 1e-5, attention: str = "eager", head: str = "mlp"):
        super().__init__()
        self.head = head
        self.backbone = MixVisionTransformer(embed_dims, depths, num_heads, sr_ratios, drop_path_rate=drop_path_rate,
                                             norm_eps=norm_eps, embed_norm_eps=embed_norm_eps)
        if attention == "sdpa" and not HAS_SDPA:
            log.warning("SegFormer attention=sdpa needs torch 2 (this is torch %s); using eager attention",
                        torch.__version__)
        for module in self.backbone.modules():
            if isinstance(module, EfficientSelfAttention):
                module.use_sdpa = attention == "sdpa" and HAS_SDPA
        self.decode_head = _DECODERS[head](embed_dims, decoder_dim, num_classes, decoder_dropout)
        self.feature_info = self.backbone.feature_info
        self.logits_reduction = 4

    def forward(self, images_bchw: Tensor, with_logits: bool = True, taps: Sequence[Tap] = ()) -> SegOutput:
        taps = attention_taps(taps)
        features, tapped = self.backbone(images_bchw, taps)
        logits = self.decode_head(features) if with_logits else None
        return SegOutput(logits, features, None, tapped if taps else None)


def checkpoint_filter_fn(state_dict: Dict[str, Tensor], model: SegFormer) -> Tuple[nn.Module, Dict[str, Tensor]]:
    """Map a checkpoint to (module to load into, state dict in our names).

    Accepts NVlabs MiT ImageNet encoders (their classifier ``head.*`` is dropped), Hugging Face
    ``SegformerForSemanticSegmentation`` / ``SegformerModel`` state dicts (whole model or encoder only) and
    mmsegmentation 0.x / 1.x SegFormer checkpoints (whole EncoderDecoder or MiT backbone only; the layout is told
    by its keys). A whole-model file must match the model's ``head`` option; otherwise the error says which to set.
    """
    if is_mmseg_segformer(state_dict):
        converted = convert_mmseg_state_dict(state_dict)
    elif any(k.startswith(("segformer.", "encoder.patch_embeddings")) for k in state_dict):
        converted = convert_hf_state_dict(state_dict)
    elif any(k.startswith("backbone.") for k in state_dict):  # this project's checkpoints: always the whole model
        _check_head_kind(state_dict, model)
        return model, state_dict
    else:
        return model.backbone, {k: v for k, v in state_dict.items() if not k.startswith("head.")}
    if not any(k.startswith("decode_head.") for k in converted):
        return model.backbone, {k[len("backbone."):]: v for k, v in converted.items()}
    _check_head_kind(converted, model)
    return model, converted


def _check_head_kind(converted: Dict[str, Tensor], model: SegFormer) -> None:
    """A whole-model file for the other decoder would load as all-missing + all-unexpected keys: say what to set."""
    if not any(k.startswith("decode_head.") for k in converted):
        return
    file_head = "mmseg" if any(k.startswith("decode_head.fusion_conv.") for k in converted) else "mlp"
    model_head = getattr(model, "head", "mlp")
    if file_head != model_head:
        names = {"mmseg": "mmsegmentation's SegformerHead (decode_head.convs / fusion_conv)",
                 "mlp": "the all-MLP decoder (decode_head.linear_c / linear_fuse)"}
        hint = " and embed_norm_eps: 1e-6 (mmseg's LayerNorms)" if file_head == "mmseg" else ""
        raise ValueError("the file's decode head is %s but the model was built with head %r; set the model's options "
                         "head: %s%s" % (names[file_head], model_head, file_head, hint))


def convert_hf_state_dict(hf_state: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Rename Hugging Face SegFormer keys to ours; their separate key/value projections become one ``kv``."""
    renames = [
        ("patch_embeddings.", "patch_embed"), ("layer_norm_1", "norm1"), ("layer_norm_2", "norm2"),
        ("attention.self.query", "attn.q"), ("attention.self.sr", "attn.sr"),
        ("attention.self.layer_norm", "attn.norm"), ("attention.output.dense", "attn.proj"),
        ("mlp.dense1", "mlp.fc1"), ("mlp.dense2", "mlp.fc2"),
    ]
    out: Dict[str, Tensor] = {}
    pending_kv: Dict[str, Dict[str, Tensor]] = {}
    for key, value in hf_state.items():
        if key.startswith("segformer."):
            key = key[len("segformer."):]
        if key.startswith("encoder."):
            key = _rename_hf_encoder_key(key[len("encoder."):], renames)
            if ".attention.self.key." in key or ".attention.self.value." in key:
                prefix, kind, param = _split_kv_key(key)
                pending_kv.setdefault(prefix + "attn.kv." + param, {})[kind] = value
                continue
            out["backbone." + key] = value
        elif key.startswith("decode_head."):
            key = (key.replace("decode_head.batch_norm", "decode_head.bn"))
            out[key] = value
        else:
            out[key] = value
    for key, parts in pending_kv.items():
        if set(parts) != {"key", "value"}:
            raise ValueError("Hugging Face SegFormer state dict has an unpaired key/value projection at %r" % key)
        out["backbone." + key] = torch.cat([parts["key"], parts["value"]], dim=0)
    return out


def _rename_hf_encoder_key(key: str, renames: List[Tuple[str, str]]) -> str:
    # "patch_embeddings.0.proj.weight" -> "patch_embed1.proj.weight"; "block.0.1.x" -> "block1.1.x";
    # "layer_norm.3.weight" -> "norm4.weight"; the patch-embedding LayerNorm is "layer_norm" inside patch_embed.
    parts = key.split(".")
    if parts[0] == "patch_embeddings":
        rest = ".".join(parts[2:]).replace("layer_norm", "norm")
        return "patch_embed%d.%s" % (int(parts[1]) + 1, rest)
    if parts[0] == "layer_norm":
        return "norm%d.%s" % (int(parts[1]) + 1, ".".join(parts[2:]))
    if parts[0] == "block":
        rest = ".".join(parts[3:])
        for old, new in renames:
            rest = rest.replace(old, new)
        return "block%d.%s.%s" % (int(parts[1]) + 1, parts[2], rest)
    raise ValueError("unrecognised Hugging Face SegFormer encoder key %r" % key)


def _split_kv_key(key: str) -> Tuple[str, str, str]:
    head, param = key.rsplit(".", 1)
    prefix, kind = head.split("attention.self.")
    return prefix, kind, param


# Official hyper-parameters (NVlabs SegFormer): widths, depths, decoder width.
_VARIANTS = {
    "b0": ((32, 64, 160, 256), (2, 2, 2, 2), 256),
    "b1": ((64, 128, 320, 512), (2, 2, 2, 2), 256),
    "b2": ((64, 128, 320, 512), (3, 4, 6, 3), 768),
    "b3": ((64, 128, 320, 512), (3, 4, 18, 3), 768),
    "b4": ((64, 128, 320, 512), (3, 8, 27, 3), 768),
    "b5": ((64, 128, 320, 512), (3, 6, 40, 3), 768),
    # Test-sized variant: same structure (every stage, spatial reduction, decoder), tiny widths.
    "tiny": ((8, 16, 24, 32), (1, 1, 1, 1), 16),
}


def _create(variant: str, num_classes: int, decoder_dim: Optional[int] = None, head: str = "mlp",
            **options) -> SegFormer:
    embed_dims, depths, variant_decoder_dim = _VARIANTS[variant]
    default_dim = variant_decoder_dim if head == "mlp" else min(MMSEG_DECODER_DIM, variant_decoder_dim)
    return SegFormer(num_classes, embed_dims, depths, decoder_dim or default_dim, head=head, **options)


@register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
def segformer_b0(num_classes: int, **options) -> SegFormer:
    return _create("b0", num_classes, **options)


@register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
def segformer_b1(num_classes: int, **options) -> SegFormer:
    return _create("b1", num_classes, **options)


@register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
def segformer_b2(num_classes: int, **options) -> SegFormer:
    return _create("b2", num_classes, **options)


@register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
def segformer_b3(num_classes: int, **options) -> SegFormer:
    return _create("b3", num_classes, **options)


@register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
def segformer_b4(num_classes: int, **options) -> SegFormer:
    return _create("b4", num_classes, **options)


@register_model("transformer", SegFormerOptions, checkpoint_filter_fn)
def segformer_b5(num_classes: int, **options) -> SegFormer:
    return _create("b5", num_classes, **options)


@register_model("transformer", SegFormerTinyOptions, checkpoint_filter_fn)
def segformer_tiny(num_classes: int, **options) -> SegFormer:
    """Test-sized: every stage, spatial reduction and the decoder, at widths 8-32 and heads (1, 2, 3, 4)."""
    return _create("tiny", num_classes, **options)
