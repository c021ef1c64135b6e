"""Official checkpoint import (`asled weights import`, asled/models/official_import.py).

Each tests/fixtures/official/keys/<method>.json is the (key, shape) list of the OFFICIAL model's state dict at
a small configuration, computed once outside the repository by instantiating the official code named in the
file ("official": repository, commit, file, config) with stand-ins for its compiled ops (mmcv / BasicSR DCN:
parameters only). BasicVSR and RefVSR carry the paper's documented adaptation (their x4 pixel-shuffle
upsampler -> a same-size conv), as ours does; BasicVSR and BasicVSR++ use 64 channels because the official
classes hard-code 64 in conv_hr. "our_kwargs" is our catalogue model at the same configuration, "wrapper" how
the released files wrap the state dict. No weights and no official code are stored.

Fixtures (method: official repository@commit, file; generator script kept outside the repository):
  basicvsr: XPixelGroup/BasicSR@8d56e3a0 basicsr/archs/basicvsr_arch.py (upconv1/upconv2 -> same-size conv, as the paper)
  basicvsr_pp: open-mmlab/mmagic@0a560bba mmagic/models/editors/basicvsr_plusplus_net/basicvsr_plusplus_net.py
  dstnet: xuboming8/DSTNet@d42c1e37 basicsr/archs/deblur_arch.py (Deblur)
  edvr: XPixelGroup/BasicSR@8d56e3a0 basicsr/archs/edvr_arch.py
  mimo_unet: chosj95/MIMO-UNet@5c580135 models/MIMOUNet.py
  mimo_unet_pp: chosj95/MIMO-UNet@5c580135 models/MIMOUNet.py (MIMOUNetPlus)
  nafnet: megvii-research/NAFNet@2b4af71e basicsr/models/archs/NAFNet_arch.py
  refvsr: codeslake/RefVSR@dfc54b02 models/archs/RefVSR_IR.py (upsample2 -> same-size conv, as the paper: conv_hr = [conv, LeakyReLU, conv_hr])
  refvsr_x4: codeslake/RefVSR@dfc54b02 models/archs/RefVSR.py (upsample2 -> same-size conv, as the paper: conv_hr = [conv, LeakyReLU, conv_hr])
  restormer: swz30/Restormer@df766d55 basicsr/models/archs/restormer_arch.py

For every method a synthetic official-format checkpoint (random values at those keys and shapes, in that
wrapper) is imported and must (a) load strictly into our model, (b) put every official tensor unchanged under
its mapped name, so our model reading the imported file through `asled infer`'s loader computes exactly what
it computes from the mapped tensors, (c) refuse a renamed key and (d) a missing key, naming it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from asled.errors import DataError
from asled.models import official_import as oi
from asled.models.registry import build_model

FIXTURES = Path(__file__).parent / "fixtures" / "official" / "keys"
METHODS = sorted(p.stem for p in FIXTURES.glob("*.json"))
# A forward pass per method costs too much for the flow-based, 64-channel ones; their state-dict equality
# is the same statement (the loader is shared), so the output check runs on the frame-by-frame/windowed ones.
FORWARD = {"nafnet", "restormer", "mimo_unet", "edvr", "dstnet"}


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def official_state(fix: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random non-zero values, ~1/sqrt(fan-in) for weights (so the forward pass stays finite), ~0.1 for vectors."""
    g = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=g) * (math.prod(shape[1:]) ** -0.5 if len(shape) > 1 else 0.1)
            for key, shape in fix["keys"]}


def wrapped(fix: dict, state: dict) -> dict:
    """The released files' layout: BasicSR {'params'}, MIMO-UNet {'model', ...}, mmagic {'state_dict':
    {'generator.*', 'step_counter'}}, RefVSR a DataParallel state dict ('module.*')."""
    kind = fix["wrapper"]
    if kind == "params":
        return {"params": state}
    if kind == "model":
        return {"model": state, "epoch": torch.tensor(3)}
    if kind == "mmagic":
        return {"meta": {"epoch": 1}, "state_dict": {**{f"generator.{k}": v for k, v in state.items()},
                                                     "step_counter": torch.zeros(1)}}
    assert kind == "module", kind
    return {f"module.{k}": v for k, v in state.items()}


def save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def run_import(fix: dict, tmp_path: Path, state: dict, **kwargs) -> dict:
    src = save(tmp_path / "official.pth", wrapped(fix, state))
    return oi.import_checkpoint(fix["method"], src, tmp_path / "ours.pt", model_kwargs=fix["our_kwargs"], **kwargs)


def ignored(layout: oi.OfficialLayout, key: str) -> bool:
    return any(re.search(p, key) for p in layout.ignore)


@pytest.mark.parametrize("name", METHODS)
def test_round_trip(name, tmp_path):
    from asled.fetch import sha256_file
    from asled.infer import load_model

    fix = fixture(name)
    state = official_state(fix)
    record = run_import(fix, tmp_path, state)
    assert record["source_sha256"] == sha256_file(tmp_path / "official.pth")
    assert json.loads(oi.sidecar(tmp_path / "ours.pt").read_text())["source_sha256"] == record["source_sha256"]
    assert not list(tmp_path.glob(".ours.pt.*"))  # no temporary left behind
    model = build_model(fix["method"], **fix["our_kwargs"])
    imported = torch.load(tmp_path / "ours.pt", weights_only=True)
    model.load_state_dict(imported["state_dict"], strict=True)  # (a)
    layout = oi.layout_for(fix["method"])
    ours = model.state_dict()
    for key, tensor in state.items():  # (b) each official tensor, unchanged, under its name
        if not ignored(layout, key):
            assert torch.equal(ours[oi.rename(layout, key)].reshape(tensor.shape), tensor), key
    loaded, info = load_model(fix["method"], tmp_path / "ours.pt", torch.device("cpu"))  # `asled infer`'s loader
    assert info["weights"] == "last"
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ours[k]), k
    if name in FORWARD:
        clip = torch.rand(1, 5, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out = loaded(clip, clip)
            assert torch.isfinite(out).all() and torch.equal(out, model.eval()(clip, clip))


@pytest.mark.parametrize("name", METHODS)
def test_renamed_and_missing_keys_are_refused(name, tmp_path):
    fix = fixture(name)
    layout = oi.layout_for(fix["method"])
    state = official_state(fix)
    key = next(k for k in reversed(list(state)) if not ignored(layout, k))
    renamed = {(f"{k}_renamed" if k == key else k): v for k, v in state.items()}
    with pytest.raises(DataError, match=re.escape(f"'{key}_renamed'")):  # (c)
        run_import(fix, tmp_path, renamed)
    del state[key]
    with pytest.raises(DataError, match=re.escape(f"'{oi.rename(layout, key)}'")):  # (d)
        run_import(fix, tmp_path, state)
    assert not (tmp_path / "ours.pt").exists()  # nothing written on failure


def test_shape_mismatch_names_key_and_shapes(tmp_path):
    fix = fixture("nafnet")
    state = official_state(fix)
    state["intro.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(DataError, match=r"'intro\.weight'.*\(8, 3, 3, 3\), ours \(16, 3, 3, 3\)"):
        run_import(fix, tmp_path, state)


def test_sr_checkpoints_name_the_replaced_upsampler(tmp_path):
    """Released RefVSR / BasicVSR files are x4 SR models: their pixel-shuffle upsampler has no counterpart in
    the deblurring adaptation, and the error says so instead of a bare key list."""
    fix = fixture("refvsr_x4")
    state = official_state(fix)
    state["upsample2.upsample_conv.weight"] = torch.zeros(32, 8, 3, 3)
    with pytest.raises(DataError, match="upsample2.upsample_conv.weight.*paper replaced"):
        run_import(fix, tmp_path, state)
    fix = fixture("basicvsr")
    state = official_state(fix)
    state["upconv1.weight"] = torch.zeros(256, 64, 3, 3)
    with pytest.raises(DataError, match=r"upconv1\.weight.*\(256, 64, 3, 3\), ours \(64, 64, 3, 3\).*paper replaced"):
        run_import(fix, tmp_path, state)


def test_wrappers(tmp_path):
    fix = fixture("nafnet")
    state = official_state(fix)
    ema = official_state(fix, seed=1)
    src = save(tmp_path / "both.pth", {"params": state, "params_ema": ema})
    oi.import_checkpoint("nafnet", src, tmp_path / "a.pt", model_kwargs=fix["our_kwargs"], param_key="params_ema")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["state_dict"]["intro.weight"], ema["intro.weight"])
    assert json.loads(oi.sidecar(tmp_path / "a.pt").read_text())["wrapper"] == "params_ema"
    with pytest.raises(DataError, match="no entry 'nope'"):
        oi.import_checkpoint("nafnet", src, tmp_path / "b.pt", model_kwargs=fix["our_kwargs"], param_key="nope")
    extra = save(tmp_path / "extra.pth", {"state_dict": {**{f"generator.{k}": v for k, v in state.items()},
                                                        "discriminator.w": torch.zeros(1)}})
    with pytest.raises(DataError, match="'discriminator.w'"):
        oi.import_checkpoint("nafnet", extra, tmp_path / "c.pt", model_kwargs=fix["our_kwargs"])


class NotWeights:  # a pickled object: weights_only loading must refuse it
    pass


def test_only_weights_are_unpickled(tmp_path):
    src = save(tmp_path / "code.pth", {"params": {"x": torch.zeros(1)}, "obj": NotWeights()})
    with pytest.raises(DataError, match="weights_only=True"):
        oi.import_checkpoint("nafnet", src, tmp_path / "out.pt")


def test_unknown_architecture_is_refused(tmp_path):
    from asled.errors import ConfigError

    with pytest.raises(ConfigError, match="no official-checkpoint map for method 'ifirnn'.*nafnet"):
        oi.layout_for("ifirnn")


# ----------------------------------------------------------------------------- use without training


def test_cli_import_then_profile_with_checkpoint(tmp_path, capsys):
    from asled.cli import main
    from asled.profiling import profile_model

    fix = fixture("nafnet")
    src = save(tmp_path / "NAFNet-GoPro-width64.pth", wrapped(fix, official_state(fix)))
    out = tmp_path / "imported.pt"
    assert main(["weights", "import", "nafnet", str(src), "--out", str(out),
                 "--kwargs", json.dumps(fix["our_kwargs"])]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == str(out) and record["wrapper"] == "params" and record["method"] == "nafnet"
    result = profile_model("nafnet", size=16, frames=2, warmup=0, runs=1, device="cpu", checkpoint=out)
    assert result["checkpoint"] == str(out) and result["model_kwargs"] == fix["our_kwargs"]


def test_checkpoint_option_and_zero_shot_rows(tmp_path):
    """`--checkpoint PATH` scores under '<method>@<stem>' (never the trained method's results); a zero-shot
    catalogue row restores with its imported file and has no training run; other rows keep theirs."""
    from asled import config
    from asled.cli import _scored, build_parser
    from asled.models.registry import entry

    params = config.load_params(Path(__file__).parents[1] / "params.yaml")
    for verb in ("infer", "evaluate", "profile"):
        args = build_parser().parse_args([verb, "nafnet", "--checkpoint", str(tmp_path / "NAFNet-GoPro.pt")])
        assert _scored(args, params) == ("nafnet@NAFNet-GoPro", tmp_path / "NAFNet-GoPro.pt")
    row = "nafnet_gopro_official"
    assert entry(row)["zero_shot"] and "zero-shot" in entry(row)["label"]
    assert entry(row)["kwargs"] == entry("nafnet")["kwargs"]
    assert config.weights_file(params, row, 0) == Path(entry(row)["checkpoint"])
    assert config.weights_file(params, "nafnet", 1) == config.paths(params).checkpoint("nafnet", 1)
    assert config.trained_methods(params, ["nafnet", row]) == ["nafnet"]


def test_zero_shot_rows_are_never_trained(capsys):
    from asled.cli import main

    assert main(["--params", str(Path(__file__).parents[1] / "params.yaml"), "train", "nafnet_gopro_official"]) == 2
    assert re.search("zero-shot row.*never trained.*asled weights import nafnet_gopro_official", capsys.readouterr().err)
