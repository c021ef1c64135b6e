"""The paper lineage's flow recipe (BasicVSR's): pretrained SPyNet, frozen for N iterations, then trained at
a learning-rate multiplier; the recipe keys, the kwarg that carries the staged file, the early error when it
is missing, and why the pretrained flow matters for Supplementary Table 1's rows (l) and (m).

Tiny models and a tiny prepared split (tests/test_dataset.make_split); "pretrained" SPyNet weights are
random non-zero weights written to a temporary file.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from conftest import REPO
from test_dataset import make_split
from torch import nn

from asled import cli, config, flow_recipe, weights
from asled.errors import ConfigError, DataError
from asled.models import registry
from asled.models.blocks import flow_warp
from asled.models.spynet import SPyNet, spynet_parameters
from asled.train import FlowSchedule, Trainer, check_settings

STAGE = "asled weights fetch --only spynet"
SETTINGS = {"iterations": 8, "batch_size": 1, "crop": 16, "frames": 2, "lr": 1e-3, "eta_min": 0.0,
            "charbonnier_eps": 1e-3, "val_every": 8, "num_workers": 0, "device": "cpu",
            "spynet": "pretrained", "flow_freeze_iterations": 3, "flow_lr_mul": 0.25}
SMALL = {"mid_channels": 8, "propagation_blocks": 1, "decoder_blocks": 1}


class TinyFlowNet(nn.Module):
    """Warps the previous blurry frame onto each frame with SPyNet, then a conv on [frame, warped]."""

    def __init__(self, spynet_weights: str | None = None, channels: int = 4) -> None:
        super().__init__()
        self.flow_net = SPyNet(spynet_weights)  # found as a SPyNet instance, whatever the attribute's name
        self.body = nn.Sequential(nn.Conv2d(6, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, blur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = blur.shape
        cur, prev = blur.flatten(0, 1), blur[:, [max(i - 1, 0) for i in range(t)]].flatten(0, 1)
        warped = flow_warp(prev, self.flow_net(cur, prev), padding_mode="border")
        return blur + self.body(torch.cat([cur, warped], 1)).view(b, t, c, h, w)


def random_spynet_file(path, seed: int = 1):
    """A 'pretrained' SPyNet: random init with the zeroed last conv of every level made non-zero."""
    torch.manual_seed(seed)
    net = SPyNet()
    for level in net.basic_module:
        nn.init.normal_(level.basic_module[-1].weight, std=0.05)
        nn.init.normal_(level.basic_module[-1].bias, std=0.5)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def tiny_flow(monkeypatch):
    monkeypatch.setitem(registry.catalog(), "tiny_flow_test", {"target": f"{__name__}:TinyFlowNet"})


@pytest.fixture
def splits(tmp_path):
    return make_split(tmp_path / "train", {"0000": 6, "0001": 5}), make_split(tmp_path / "valid", {"0002": 3})


def snapshot(params):
    return [p.detach().clone() for p in params]


def max_change(params, before):
    return max((p.detach() - b).abs().max().item() for p, b in zip(params, before))


# ----------------------------------------------------------------------------- recipe keys


def test_flow_keys_default_to_basicvsr_and_are_validated():
    base = {k: v for k, v in SETTINGS.items() if k not in flow_recipe.FLOW_DEFAULTS}
    s = check_settings(base)
    assert (s["spynet"], s["flow_freeze_iterations"], s["flow_lr_mul"]) == ("pretrained", 5000, 0.125)
    for bad in ({"spynet": "imagenet"}, {"flow_freeze_iterations": -1}, {"flow_lr_mul": -0.5}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            check_settings({**base, **bad})
    params = config.load_params(REPO / "params.yaml")
    assert check_settings(config.train_settings(params, "asled_net"))["spynet"] == "scratch"  # the offline demo
    paper = check_settings(params["recipes"]["paper"]["train"])
    assert {k: paper[k] for k in flow_recipe.FLOW_DEFAULTS} == flow_recipe.FLOW_DEFAULTS


def test_schema_accepts_the_flow_keys_and_rejects_bad_values(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["recipes"]["demo"]["train"]["spynet"] = "imagenet"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="spynet"):
        config.load_params(tmp_path / "params.yaml")


def test_pretrained_recipe_passes_the_staged_spynet_to_every_spynet_model():
    params = config.load_params(REPO / "params.yaml")
    assert all("spynet_weights" not in config.model_kwargs(params, m) for m in config.all_methods(params))
    params["dataset"] = "realmcvsr"  # the paper recipe
    staged = str(weights.REGISTRY["spynet"].path())
    for method in config.all_methods(params):  # every AsLeD-Net row, BasicVSR, BasicVSR++, RefVSR; no other
        uses_spynet = method.startswith("asled_net") or method in ("basicvsr", "basicvsr_pp", "refvsr")
        assert config.model_kwargs(params, method).get("spynet_weights") == (staged if uses_spynet else None), method
    assert check_settings(config.train_settings(params, "basicvsr_pp"))["flow_lr_mul"] == 0.25  # its own recipe
    assert check_settings(config.train_settings(params, "basicvsr"))["flow_lr_mul"] == 0.125
    params["recipes"]["paper"]["method_overrides"] = {"basicvsr": {"spynet": "scratch"}}
    assert "spynet_weights" not in config.model_kwargs(params, "basicvsr")
    params["recipes"]["paper"]["model_overrides"] = {"basicvsr": {"spynet_weights": "elsewhere.pth"}}
    with pytest.raises(ConfigError, match="scratch"):
        config.model_kwargs(params, "basicvsr")


def test_the_kwarg_rule_matches_the_models_that_hold_a_spynet():
    """`spynet_weights` reaches exactly the models that contain a SPyNet (built on the meta device)."""
    for method in registry.model_names():
        with torch.device("meta"):
            model = registry.build_model(method)
        holds = any(isinstance(m, SPyNet) for m in model.modules())
        assert flow_recipe.takes_spynet_weights(method) == holds, method


# ----------------------------------------------------------------------------- the schedule


def test_spynet_frozen_then_trained_at_the_multiplied_rate(tiny_flow, splits, tmp_path):
    train_dir, valid_dir = splits
    pretrained = random_spynet_file(tmp_path / "spynet.pth")
    trainer = Trainer("tiny_flow_test", train_dir, valid_dir, tmp_path / "x.pt", SETTINGS, device="cpu",
                      model_kwargs={"spynet_weights": str(pretrained)})
    flow, rest = spynet_parameters(trainer.model), list(trainer.model.body.parameters())
    main_group, flow_group = trainer.optimizer.param_groups
    assert [id(p) for p in flow_group["params"]] == [id(p) for p in trainer.model.flow_net.parameters()]
    assert [id(p) for p in main_group["params"]] == [id(p) for p in rest]
    assert flow_group["lr"] == pytest.approx(main_group["lr"] * 0.25)

    trainer.wrap()
    data = iter(trainer.loader())
    flow0, rest0 = snapshot(flow), snapshot(rest)
    for _ in range(3):  # the frozen iterations: no update and no Adam state for SPyNet
        trainer.step(next(data))
    assert all(torch.equal(p, b) for p, b in zip(flow, flow0))
    assert not any(p in trainer.optimizer.state for p in flow)
    assert max_change(rest, rest0) > 0

    # the first free step is Adam's first step for SPyNet: every weight with a gradient moves by ~lr_flow
    lr_main, lr_flow = main_group["lr"], flow_group["lr"]
    assert lr_flow == pytest.approx(0.25 * lr_main, rel=1e-9)  # the cosine schedule keeps the ratio
    before = snapshot(flow)
    trainer.step(next(data))
    assert max_change(flow, before) == pytest.approx(lr_flow, rel=1e-3)
    assert max_change(flow, before) < 0.3 * lr_main
    assert all(p in trainer.optimizer.state for p in flow)


def test_resume_continues_the_flow_schedule_exactly(tiny_flow, splits, tmp_path):
    """Save the resume file before the freeze ends, continue in a new Trainer: the same weights and Adam
    state as an uninterrupted run, bit for bit (CPU)."""
    train_dir, valid_dir = splits
    kwargs = {"model_kwargs": {"spynet_weights": str(random_spynet_file(tmp_path / "spynet.pth"))}, "device": "cpu"}

    def fresh(name):
        return Trainer("tiny_flow_test", train_dir, valid_dir, tmp_path / name, SETTINGS, **kwargs)

    def run_until(trainer, stop):
        trainer.wrap()
        data = iter(trainer.loader())
        while trainer.iteration < stop:
            trainer.step(next(data))

    straight = fresh("straight.pt")
    run_until(straight, 5)
    first = fresh("split.pt")
    run_until(first, 2)
    first.save_resume("test")
    second = fresh("split.pt")
    assert second.load_resume() and second.iteration == 2
    run_until(second, 5)
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert len(second.optimizer.param_groups) == 2
    for group_a, group_b in zip(straight.optimizer.param_groups, second.optimizer.param_groups):
        assert group_a["lr"] == group_b["lr"]
        for p, q in zip(group_a["params"], group_b["params"]):
            assert torch.equal(straight.optimizer.state[p]["exp_avg_sq"], second.optimizer.state[q]["exp_avg_sq"])


def test_schedule_without_a_spynet_is_one_group():
    model = nn.Conv2d(3, 3, 3)
    schedule = FlowSchedule(model, {**SETTINGS})
    assert schedule.params == [] and len(schedule.param_groups(model, 1e-3)) == 1


def test_shared_and_frozen_spynets():
    """A SPyNet shared by two branches is one set of parameters; a frozen one (RefVSR's official
    `freeze_spynet`) stays out of the optimiser."""
    from baselines._propagation import build_spynet

    model = registry.build_model("asled_net", **SMALL)
    assert len(spynet_parameters(model)) == len(list(model.spynet.parameters()))
    frozen = nn.ModuleDict({"flow": SPyNet(), "body": nn.Conv2d(3, 3, 1)})
    frozen["flow"].requires_grad_(False)
    assert spynet_parameters(frozen) == [] and len(spynet_parameters(frozen, trainable_only=False)) == 60
    with pytest.raises(ConfigError, match="spynet_weights"):
        build_spynet(None, freeze=True)


# ----------------------------------------------------------------------------- rows (l) and (m)


def rows_at_init(spynet_weights):
    """Outputs of the full model and of rows (l) and (m) carrying the full model's weights (shared keys)."""
    torch.manual_seed(0)
    full = registry.build_model("asled_net", **SMALL, spynet_weights=spynet_weights)
    blur, ref = torch.rand(1, 3, 3, 32, 32), torch.rand(1, 3, 3, 32, 32)
    rows = {}
    for row in ("asled_net_s1_l", "asled_net_s1_m"):
        model = registry.build_model(row, **SMALL, spynet_weights=spynet_weights)
        missing, _ = model.load_state_dict(full.state_dict(), strict=False)
        assert not missing  # (l) and (m) only drop RMC's refiner
        rows[row] = model
    with torch.no_grad():
        out = {"full": full(blur, ref), **{row: m(blur, ref) for row, m in rows.items()}}
    return out, full, rows, (blur, ref)


def test_pretrained_flow_separates_row_m_from_the_full_model(tmp_path):
    """With a zero-initialised (scratch) SPyNet the flow is zero, so warping is the identity and rows (l)
    and (m) compute exactly the full model's function at initialisation (the audit's difference 0.0).
    A pretrained SPyNet gives a non-zero flow from step 0: row (m), which does not warp, differs at once."""
    scratch, *_ = rows_at_init(None)
    assert torch.equal(scratch["asled_net_s1_l"], scratch["full"])
    assert torch.equal(scratch["asled_net_s1_m"], scratch["full"])

    pretrained, *_ = rows_at_init(str(random_spynet_file(tmp_path / "spynet.pth")))
    assert (pretrained["asled_net_s1_m"] - pretrained["full"]).abs().max() > 1e-3
    # RMC's refiner adds a correction whose last conv is zero-initialised (refinement starts as a no-op,
    # like BasicVSR++'s offset convs), so row (l) matches the full model at initialisation whatever the
    # flow; it separates with the first update of the refiner, which the full model trains and (l) lacks.
    assert torch.equal(pretrained["asled_net_s1_l"], pretrained["full"])


def test_row_l_separates_after_one_update(tmp_path):
    _, full, rows, (blur, ref) = rows_at_init(str(random_spynet_file(tmp_path / "spynet.pth")))
    row_l = rows["asled_net_s1_l"]
    for model in (full, row_l):
        model.zero_grad()
        model(blur, ref).mean().backward()
    assert full.rmc.refiner.conv_out.weight.grad.abs().max() > 0  # the refiner learns from step 1
    for model in (full, row_l):
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p -= 1e-2 * p.grad
    with torch.no_grad():
        assert (full(blur, ref) - row_l(blur, ref)).abs().max() > 1e-6


# ----------------------------------------------------------------------------- a missing file


def paper_workspace(tmp_path, monkeypatch):
    """cwd = a folder with params.yaml whose demo recipe asks for the pretrained SPyNet, and no data."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["recipes"]["demo"]["train"]["spynet"] = "pretrained"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "workflow").mkdir()
    shutil.copy(REPO / "workflow/weights.lock.json", tmp_path / "workflow")
    monkeypatch.chdir(tmp_path)
    return params


def test_missing_spynet_stops_the_dag_and_the_job_before_any_step(tmp_path, monkeypatch, capsys):
    params = paper_workspace(tmp_path, monkeypatch)
    staged = weights.REGISTRY["spynet"].path()
    # Snakemake's DAG build (workflow/rules/common.smk) ...
    assert "check_pretrained_spynet(config, ALL_METHODS)" in (REPO / "workflow/rules/common.smk").read_text()
    with pytest.raises(DataError) as err:
        flow_recipe.check_pretrained_spynet(params, config.all_methods(params))
    for text in (str(staged), STAGE, "spynet: scratch", "recipes.demo.train"):
        assert text in str(err.value)
    # ... and `asled train` before its data: no prepared split exists, yet the error is the SPyNet one
    assert cli.main(["--params", "params.yaml", "train", "asled_net", "--seed", "0"]) == 2
    message = capsys.readouterr().err
    assert str(staged) in message and STAGE in message and "prepared" not in message
    assert not (tmp_path / "checkpoints").exists()

    staged.parent.mkdir(parents=True)  # a file of the right name but not the pinned one
    random_spynet_file(staged)
    with pytest.raises(DataError, match="corrupt") as err:
        flow_recipe.check_pretrained_spynet(params, ["basicvsr"])
    assert STAGE in str(err.value)
    params["recipes"]["demo"]["train"]["spynet"] = "scratch"  # the offline alternative
    flow_recipe.check_pretrained_spynet(params, config.all_methods(params))


# ----------------------------------------------------------------------------- data parallel

DDP_DRIVER = '''
import sys
from pathlib import Path

import torch

from asled import distributed
from asled.models import registry
from asled.train import Trainer

root = Path(sys.argv[1])
torch.set_num_threads(1)
registry.catalog()["tiny_flow_test"] = {"target": "test_flow_recipe:TinyFlowNet"}
settings = {**SETTINGS, "batch_size": 2, "flow_freeze_iterations": 1}
trainer = Trainer("tiny_flow_test", root / "train", root / "valid", root / "unused.pt", settings,
                  model_kwargs={"spynet_weights": str(root / "spynet.pth")})
trainer.wrap()
data = iter(trainer.loader())
states = [{k: v.clone() for k, v in trainer.model.state_dict().items()}]
for _ in range(3):
    trainer.step(next(data))
    states.append({k: v.clone() for k, v in trainer.model.state_dict().items()})
torch.save(states, root / f"rank{trainer.env.rank}_of_{trainer.env.world_size}.pt")
distributed.teardown(trainer.env)
'''


@pytest.mark.slow
def test_two_ranks_keep_the_flow_schedule_in_step(splits, tmp_path):
    """Under DDP (2 gloo ranks) SPyNet stays frozen for the first iteration on both ranks, then trains, and
    the ranks hold identical weights throughout."""
    import os
    import subprocess
    import sys

    random_spynet_file(tmp_path / "spynet.pth")
    driver = tmp_path / "driver.py"
    driver.write_text("from test_flow_recipe import SETTINGS\n" + DDP_DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                             str(driver), str(tmp_path)], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}_of_2.pt", weights_only=True) for r in range(2))
    flow_keys = [k for k in r0[0] if k.startswith("flow_net.")]
    assert flow_keys
    for a, b in zip(r0, r1):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(r0[1][k], r0[0][k]) for k in flow_keys)  # frozen in iteration 0
    assert not torch.equal(r0[1]["body.0.weight"], r0[0]["body.0.weight"])
    assert any(not torch.equal(r0[2][k], r0[1][k]) for k in flow_keys)  # trained from iteration 1
