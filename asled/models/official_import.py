"""Official checkpoints -> our state dicts (`asled weights import METHOD FILE`).

Each baseline's official key names differ from ours only by module names (our files name layers for what
they do). One `OfficialLayout` per architecture holds the whole difference as data: regex rewrites applied
in turn to every official key, the official constant buffers ours rebuilds itself, the official tensors
stored with extra singleton dimensions (DSTNet's Conv3d 1xkxk = our Conv2d kxk), and the official keys that
can never be imported, with the reason. The maps were read off the official models' own key lists
(tests/fixtures/official/keys/<method>.json, computed from the official code; tests/test_weights_import.py).

Strict by construction: an official key the map does not place, one of ours the checkpoint does not fill,
and any shape difference is an error naming the key, the file and the fix. Files are read with
`torch.load(weights_only=True)` only, and written atomically in our checkpoint format (so `asled infer
--checkpoint` reads them like a trained one), with a JSON sidecar recording the source's SHA-256.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asled.errors import ConfigError, DataError

# SPyNet as mmagic (ConvModule: `.N.conv.`) and RefVSR (`FlowNet.`) store it; BasicSR's Sequential matches ours.
_SPYNET_CONVMODULE = tuple(
    (rf"^(spynet|FlowNet)\.basic_module\.(\d)\.basic_module\.{i}\.conv\.", rf"spynet.basic_module.\2.basic_module.{2 * i}.")
    for i in range(5)
)
_SPYNET_BUFFERS = r"^spynet\.(mean|std)$"  # ImageNet normalisation, rebuilt by our SPyNet (blocks.register_imagenet_stats)
# Our ResidualBlocksWithInputConv names: main.0 = conv, main.2 = the residual blocks.
_INPUT_CONV_BLOCKS = ((r"\.main\.0\.", ".conv."), (r"\.main\.2\.", ".blocks."))
_PCD_LEVELS = tuple((rf"\.l{n}\.", f".{n - 1}.") for n in (1, 2, 3))  # EDVR's PCD levels l1..l3 = our index 0..2
_EDVR_FUSION = (
    (r"\.temporal_attn1\.", ".temporal_ref."), (r"\.temporal_attn2\.", ".temporal_nbr."),
    (r"\.feat_fusion\.", ".fusion."), (r"\.spatial_attn_l(\d)\.", r".level\1."),
    (r"\.spatial_attn_add(\d)\.", r".add\1."), (r"\.spatial_attn(\d)\.", r".spatial\1."),
)
_SR_UPSAMPLER = ("the official x4 super-resolution upsampler (conv + pixel shuffle), which the paper replaced by a "
                 "same-size conv: official SR weights have no counterpart for it, so this checkpoint cannot be scored "
                 "zero-shot on deblurring")


@dataclass(frozen=True)
class OfficialLayout:
    source: str  # official repository and file the key list comes from
    checkpoints: str  # released files known to fit, for the model card and error messages
    rules: tuple[tuple[str, str], ...] = ()  # (regex, replacement), applied in turn to every official key
    ignore: tuple[str, ...] = ()  # official constant buffers ours rebuilds (regex on official keys)
    squeeze: tuple[str, ...] = ()  # our keys whose official tensor has extra singleton dims (regex)
    unsupported: tuple[tuple[str, str], ...] = ()  # (regex on official keys, why it cannot be imported)
    note: str = ""  # added to shape errors: what a mismatch usually means for this method


LAYOUTS: dict[str, OfficialLayout] = {
    "baselines.nafnet:NAFNet": OfficialLayout(
        "megvii-research/NAFNet basicsr/models/archs/NAFNet_arch.py", "NAFNet-GoPro-width64.pth (params)",
        rules=((r"^middle_blks\.", "middle."),)),
    "baselines.restormer:Restormer": OfficialLayout(
        "swz30/Restormer basicsr/models/archs/restormer_arch.py", "motion_deblurring.pth (params)",
        rules=((r"\.norm(\d)\.body\.", r".norm\1."), (r"^patch_embed\.proj\.", "patch_embed."),
               (r"^((down|up)\d_\d)\.body\.", r"\1."))),
    "baselines.mimo_unet:MIMOUNet": OfficialLayout(
        "chosj95/MIMO-UNet models/MIMOUNet.py", "MIMO-UNet.pkl, MIMO-UNetPlus.pkl (key 'model')",
        rules=((r"^Encoder\.(\d)\.layers\.", r"encoder.\1."), (r"^Decoder\.(\d)\.layers\.", r"decoder.\1."),
               (r"\.main\.0\.(weight|bias)$", r".0.\1"), (r"^ConvsOut\.", "convs_out."), (r"^Convs\.", "convs."),
               (r"^AFFs\.", "affs."), (r"^FAM(\d)\.", r"fam\1."), (r"^SCM(\d)\.", r"scm\1."))),
    "baselines.edvr:EDVR": OfficialLayout(
        "XPixelGroup/BasicSR basicsr/archs/edvr_arch.py", "EDVR_L_deblur_REDS_official-ca46bd8c.pth (params)",
        rules=((r"^predeblur\.stride_conv_hr1\.", "predeblur.down_hr.0."),
               (r"^predeblur\.stride_conv_hr2\.", "predeblur.down_hr.1."),
               (r"^predeblur\.stride_conv_(l\d)\.", r"predeblur.down_\1."),
               (r"^predeblur\.resblock_(l3|l2_1|l2_2)\.", r"predeblur.block_\1.0."),
               (r"^predeblur\.resblock_l1\.([01])\.", r"predeblur.blocks_l1_a.\1."),
               (r"^predeblur\.resblock_l1\.2\.", "predeblur.blocks_l1_b.0."),
               (r"^predeblur\.resblock_l1\.3\.", "predeblur.blocks_l1_b.1."),
               (r"^predeblur\.resblock_l1\.4\.", "predeblur.blocks_l1_b.2."),
               (r"^conv_(l\d)_1\.", r"conv_\1.0."), (r"^conv_(l\d)_2\.", r"conv_\1.1."),
               *_PCD_LEVELS, (r"\.dcn_pack\.", ".dcn."), (r"\.cas_dcnpack\.", ".cas_dcn."), *_EDVR_FUSION)),
    "baselines.dstnet:DSTNet": OfficialLayout(
        "xuboming8/DSTNet basicsr/archs/deblur_arch.py (Deblur)", "GOPRO.pth (params)",
        rules=((r"^x_wave_(\d)_conv1\.", r"high\1.0."), (r"^x_wave_(\d)_conv2\.", r"high\1.1."),
               (r"^transformer_scale4\.(\d+)\.0\.norm2\.body\.", r"cwgdn.\1.norm.norm."),
               (r"^transformer_scale4\.(\d+)\.0\.ffn\.kerner_conv_channel\.Block(\d)\.", r"cwgdn.\1.dynamic.block\2."),
               (r"^transformer_scale4\.(\d+)\.0\.ffn\.kerner_conv_channel\.tokernel\.", r"cwgdn.\1.dynamic.to_kernel."),
               (r"^transformer_scale4\.(\d+)\.0\.ffn\.kerner_conv_channel\.bias", r"cwgdn.\1.dynamic.bias"),
               (r"^transformer_scale4\.(\d+)\.0\.ffn\.", r"cwgdn.\1."),
               (r"^(\w+_propagation)\.conv1\.", r"\1.fuse."), (r"^(\w+_propagation)\.conv2\.", r"\1.gate1."),
               (r"^(\w+_propagation)\.conv3\.", r"\1.gate2."),
               (r"^(\w+_propagation)\.kernel_conv_pixel\.Block(\d)\.", r"\1.dynamic.block\2."),
               (r"^(\w+_propagation)\.kernel_conv_pixel\.tokernel\.", r"\1.dynamic.to_kernel."),
               (r"^(\w+_propagation)\.resblock_bcakward2d\.main\.0\.", r"\1.blocks.")),
        ignore=(r"^wave\.haar_weights$",),  # the fixed Haar filters, rebuilt by ours
        squeeze=(r"^(feat_extractor|recons)\.weight$", r"^cwgdn\.\d+\.project_(in|out)\.weight$")),
    "baselines.basicvsr:BasicVSR": OfficialLayout(
        "XPixelGroup/BasicSR basicsr/archs/basicvsr_arch.py", "none released for deblurring (SR: BasicVSR_REDS4.pth)",
        rules=((r"^(backward|forward)_trunk\.main\.0\.", r"propagation.\1_trunk.conv."),
               (r"^(backward|forward)_trunk\.main\.2\.", r"propagation.\1_trunk.blocks."),
               (r"^fusion\.", "propagation.fusion.")),
        ignore=(_SPYNET_BUFFERS,),
        note=f"upconv1/upconv2 of an SR checkpoint are {_SR_UPSAMPLER}"),
    "baselines.basicvsr_pp:BasicVSRPlusPlus": OfficialLayout(
        "open-mmlab/mmagic mmagic/models/editors/basicvsr_plusplus_net/basicvsr_plusplus_net.py",
        "basicvsr_plusplus_deblur_gopro / _dvd (mmagic state_dict, generator.)",
        rules=(*_SPYNET_CONVMODULE, *_INPUT_CONV_BLOCKS, (r"^(upsample\d)\.upsample_conv\.", r"\1.conv.")),
        ignore=(_SPYNET_BUFFERS,)),
}
LAYOUTS["baselines.refvsr:RefVSR"] = OfficialLayout(
    "codeslake/RefVSR models/archs/RefVSR_IR.py, RefVSR.py", "none released for deblurring (SR x4: RefVSR_MFID.pytorch)",
    rules=(*_SPYNET_CONVMODULE, (r"^FlowNet\.", "spynet."),
           (r"^feature_match\.feature_extract\.map64\.", "feature_match.map."),
           (r"^feature_match\.feature_extract\.", "feature_match.vgg."),
           (r"^aa2\.align\.conv1\.", "align2.embed."), (r"^aa2\.align\.p_conv\.", "align2.predict."),
           (r"^upsample1\.upsample_conv\.", "upsample1.conv."), (r"^feat_fusion2_1\.0\.0\.", "feat_fusion2_1.0."),
           (r"\.RBs\.", ".blocks."), *_INPUT_CONV_BLOCKS, (r"_BWFW\.", "_bwfw."), (r"^fusion_UP\.", "fusion_up."),
           # the paper's adaptation as the fixture applies it: conv_hr = [same-size conv, LeakyReLU, conv_hr]
           (r"^conv_hr\.0\.", "upconv2."), (r"^conv_hr\.2\.", "conv_hr."),
           (r"^edvr\.conv_first\.", "refill.conv_first."), (r"^edvr\.feature_extraction\.", "refill.feature_extraction."),
           (r"^edvr\.feat_(l\d)_conv1\.conv\.", r"refill.conv_\1.0."), (r"^edvr\.feat_(l\d)_conv2\.conv\.", r"refill.conv_\1.1."),
           (r"^edvr\.pcd_alignment\.", "refill.pcd_align."), (r"^edvr\.fusion\.", "refill.fusion."),
           *_PCD_LEVELS, (r"\.dcn_pack\.", ".dcn."), (r"\.cas_dcnpack\.", ".cas_dcn."), *_EDVR_FUSION,
           (r"^(refill\.\S+)\.conv\.(weight|bias)$", r"\1.\2")),  # mmcv ConvModule's `.conv.`
    ignore=(r"^feature_match\.sub_mean\.(weight|bias)$",),  # VGG's fixed ImageNet mean shift (a frozen conv)
    unsupported=((r"^upsample2\.upsample_conv\.", _SR_UPSAMPLER),))

# mmagic/mmedit training-wrapper state saved beside `generator.*`: not part of the network.
WRAPPER_KEYS = ("step_counter", "data_preprocessor.mean", "data_preprocessor.std")
DEFAULT_OUT = Path("data/weights/official")
SHOWN = 8  # keys named in one error


def layout_for(method: str) -> OfficialLayout:
    from asled.models.registry import entry

    target = entry(method)["target"]
    if target not in LAYOUTS:
        known = sorted({m for m in _catalogue_methods() if entry(m)["target"] in LAYOUTS})
        raise ConfigError(f"no official-checkpoint map for method '{method}' ({target}); "
                          f"`asled weights import` knows: {', '.join(known)}")
    return LAYOUTS[target]


def _catalogue_methods() -> list[str]:
    from asled.models.registry import model_names

    return model_names()


def _listing(keys: list[str]) -> str:
    more = f" ... and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(f"'{k}'" for k in keys[:SHOWN]) + more


def _only_tensors(state: dict, source: str, where: str) -> dict:
    import torch

    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad or not state:
        raise DataError(f"{source}: {where} is not a state dict of tensors (non-tensor entries: {_listing(bad) or 'none; empty'}); "
                        "pass --param-key with the entry that holds the network's weights")
    return state


def unwrap(obj: Any, source: str, param_key: str | None = None) -> tuple[dict, str]:
    """The network's state dict inside an official file, and which wrapper held it: a plain state dict,
    BasicSR's {'params'|'params_ema': ...} (NAFNet, Restormer, EDVR, BasicVSR, DSTNet), mmagic's
    {'state_dict': {'generator.*', ...}}, MIMO-UNet's {'model': ...}; a DataParallel `module.` prefix is removed."""
    import torch

    if not isinstance(obj, dict):
        raise DataError(f"{source}: holds a {type(obj).__name__}, not a dict of weights; is it an official checkpoint?")
    if param_key is not None:
        if param_key not in obj:
            raise DataError(f"{source}: no entry '{param_key}' (entries: {_listing(sorted(map(str, obj)))})")
        state, how = obj[param_key], param_key
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state, how = obj, "state dict"
    else:
        how = next((k for k in ("params", "params_ema", "state_dict", "model") if k in obj), None)
        if how is None:
            raise DataError(f"{source}: none of the known wrappers params / params_ema / state_dict / model "
                            f"(entries: {_listing(sorted(map(str, obj)))}); pass --param-key NAME")
        state = obj[how]
    state = dict(_only_tensors(state if isinstance(state, dict) else {}, source, f"entry '{how}'"))
    if any(k.startswith("generator.") for k in state):  # mmagic / mmedit
        extra = [k for k in state if not k.startswith("generator.") and k not in WRAPPER_KEYS]
        if extra:
            raise DataError(f"{source}: keys outside 'generator.' that are not mmagic wrapper state: {_listing(extra)}")
        state, how = {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}, f"{how}/generator."
    if state and all(k.startswith("module.") for k in state):
        state, how = {k[len("module."):]: v for k, v in state.items()}, f"{how}/module."
    return state, how


def rename(layout: OfficialLayout, key: str) -> str:
    for pattern, replacement in layout.rules:
        key = re.sub(pattern, replacement, key)
    return key


def our_shapes(method: str, model_kwargs: dict | None = None) -> dict[str, tuple[int, ...]]:
    """Our state dict's keys and shapes for `method` (catalogue kwargs + `model_kwargs`), built on the meta device."""
    import torch

    from asled.models.registry import build_model

    with torch.device("meta"):
        model = build_model(method, **(model_kwargs or {}))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _fit(layout: OfficialLayout, key: str, name: str, tensor, shape: tuple, source: str):
    if tuple(tensor.shape) == shape:
        return tensor
    squeezable = any(re.search(p, name) for p in layout.squeeze)
    if squeezable and [d for d in tensor.shape if d != 1] == [d for d in shape if d != 1]:
        return tensor.reshape(shape)  # e.g. Conv3d 1xkxk -> Conv2d kxk: the same weights
    note = f"; {layout.note}" if layout.note else ""
    raise DataError(f"{source}: official '{key}' (ours '{name}') has shape {tuple(tensor.shape)}, ours {shape}; "
                    f"is the checkpoint for this method's configuration (asled/models/catalog.yaml kwargs)?{note}")


def convert(method: str, state: dict, source: str, model_kwargs: dict | None = None) -> dict:
    """Official state dict -> ours for `method`, strictly: every key placed, every one of ours filled, shapes equal."""
    layout = layout_for(method)
    ours = our_shapes(method, model_kwargs)
    mapped, origin, left = {}, {}, []
    for key, tensor in state.items():
        if any(re.search(p, key) for p in layout.ignore):
            continue
        for pattern, why in layout.unsupported:
            if re.search(pattern, key):
                raise DataError(f"{source}: official '{key}' is {why}")
        name = rename(layout, key)
        if name not in ours or name in mapped:
            left.append(key if name not in ours else f"{key} (also '{origin[name]}' -> '{name}')")
            continue
        mapped[name], origin[name] = _fit(layout, key, name, tensor, ours[name], source), key
    fix = (f"is it an official {method} checkpoint ({layout.checkpoints}, from {layout.source})? Another architecture "
           f"needs its own method name; a layer the map misses needs a rule in LAYOUTS (asled/models/official_import.py)")
    if left:
        raise DataError(f"{source}: official keys with no place in our '{method}': {_listing(left)}; {fix}")
    missing = [k for k in ours if k not in mapped]
    if missing:
        raise DataError(f"{source}: our '{method}' keys the checkpoint does not fill: {_listing(missing)}; {fix}")
    return mapped


def default_out(method: str, source: Path) -> Path:
    return DEFAULT_OUT / method / f"{source.stem}.pt"


def import_checkpoint(method: str, source: str | Path, out: str | Path | None = None,
                      model_kwargs: dict | None = None, param_key: str | None = None) -> dict:
    """Convert an official checkpoint into our checkpoint format at `out` (atomically), plus `out`.json
    recording the source's SHA-256, the method and the wrapper read. Returns that record."""
    import torch

    from asled.fetch import sha256_file
    from asled.io import atomic_path, load_tensors, write_text

    source = Path(source)
    obj = load_tensors(source, missing="no such file; give the path of the downloaded official checkpoint",
                       unreadable="cannot be read with torch.load(weights_only=True); only plain tensor "
                                  "checkpoints are imported (no pickled code)")
    state, how = unwrap(obj, str(source), param_key)
    mapped = convert(method, state, str(source), model_kwargs)
    out = Path(out) if out else default_out(method, source)
    record = {"method": method, "source": str(source), "source_sha256": sha256_file(source), "wrapper": how,
              "official_code": layout_for(method).source, "keys": len(mapped), "zero_shot": True}
    ckpt = {"method": method, "model_kwargs": dict(model_kwargs or {}), "state_dict": mapped, "imported_from": record}
    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    write_text(sidecar(out), json.dumps({**record, "file": str(out)}, indent=2) + "\n")
    return {**record, "file": str(out)}


def sidecar(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")
