"""Data-parallel training on CPU: 2 gloo ranks under torchrun against 1 process.

Gradient test: one step with global batch B on 2 ranks (B/2 samples each, DDP averaging) gives the
gradients of one process with batch B. Tolerance: `torch.testing.assert_close(atol=1e-5, rtol=1e-4)`
for gradients of magnitude ~0.1-1: only the order of float32 sums differs (a bias gradient sums 3072
terms of either sign, in one batch of 4 vs. two batches of 2 averaged; measured difference 7.5e-6, i.e.
2e-5 relative; a wrong averaging would be off by a factor of 2). The two ranks' gradients are identical
(bit for bit).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_dataset import make_split
from test_train_resume import (
    METHOD,
    asled_cmd,
    env,
    files,
    install_plugin,
    make_workspace,
    run_to_end,
    start_and_wait_for_resume_file,
)

from asled.distributed import RankSamples, torchrun_command
from asled.train import RESUME_EXIT_CODE

GRAD_DRIVER = '''
import sys
from pathlib import Path

import torch

from asled import distributed
from asled.train import Trainer

root, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(1)
settings = {"iterations": 3, "batch_size": 4, "crop": 16, "frames": 3, "lr": 1e-3, "eta_min": 1e-5,
            "charbonnier_eps": 1e-3, "val_every": 3, "num_workers": 0, "device": "cpu"}
trainer = Trainer("tiny_plugin_net", root / "train", root / "valid", root / "unused.pt", settings)
trainer.wrap()
batch = next(iter(trainer.loader()))
loss, _ = trainer.step(batch)
grads = {name: p.grad.detach().clone() for name, p in trainer.model.named_parameters()}
torch.save({"grads": grads, "loss": float(loss), "local_batch": batch["blur"].shape[0], "world": trainer.env.world_size,
            "backend": trainer.env.backend}, out / f"rank{trainer.env.rank}_of_{trainer.env.world_size}.pt")
distributed.teardown(trainer.env)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("site"))


def test_rank_samples_split_the_global_batch():
    one = RankSamples(2, 5, 4)
    ranks = [RankSamples(2, 5, 4, rank=r, world_size=2) for r in range(2)]
    assert list(one) == list(range(8, 20))
    assert len(ranks[0]) == len(ranks[1]) == 6
    for k in range(3):  # every iteration: the two ranks' samples together are the one-process batch
        assert sorted(ranks[0][2 * k : 2 * k + 2] + ranks[1][2 * k : 2 * k + 2]) == one[4 * k : 4 * k + 4]
    assert ranks[0][:2] == [8, 10] and ranks[1][:2] == [9, 11]  # DistributedSampler's strided split
    with pytest.raises(Exception, match="multiple of the number of processes"):
        RankSamples(0, 1, 3, rank=0, world_size=2)


def test_torchrun_command():
    cmd = torchrun_command(["train", "m"], 2)
    assert cmd[1:5] == ["-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone"]
    assert cmd[-4:] == ["-m", "asled", "train", "m"]
    multi = torchrun_command(["train", "m"], 4, nnodes=2, rdzv_endpoint="node1:29500", rdzv_id="42")
    assert "--nnodes=2" in multi and "--rdzv-endpoint=node1:29500" in multi and "--rdzv-id=42" in multi


# acceptance test, ~10 s: part of the default run
def test_two_gloo_ranks_give_the_gradients_of_one_process(tmp_path, site):
    make_split(tmp_path / "train", {"0000": 6, "0001": 5})
    make_split(tmp_path / "valid", {"0002": 5})
    driver = tmp_path / "driver.py"
    driver.write_text(GRAD_DRIVER)
    e = env(tmp_path)
    e["PYTHONPATH"] = str(site)
    single = subprocess.run([sys.executable, str(driver), str(tmp_path), str(tmp_path)], env=e,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          str(driver), str(tmp_path), str(tmp_path)], env=e, capture_output=True, text=True,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    one = torch.load(tmp_path / "rank0_of_1.pt", weights_only=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}_of_2.pt", weights_only=True) for r in range(2))
    assert (one["local_batch"], r0["local_batch"], r1["local_batch"]) == (4, 2, 2)
    assert r0["backend"] == "gloo" and one["world"] == 1
    assert one["grads"].keys() == r0["grads"].keys() and len(one["grads"]) == 4
    for name, g in one["grads"].items():
        assert torch.equal(r0["grads"][name], r1["grads"][name])  # DDP leaves every rank the same gradient
        torch.testing.assert_close(r0["grads"][name], g, atol=1e-5, rtol=1e-4)
        assert g.abs().max() > 1e-4  # a real gradient, not zeros
    # each rank's loss is over its half of the batch; their mean is the whole batch's loss
    assert (r0["loss"] + r1["loss"]) / 2 == pytest.approx(one["loss"], rel=1e-6)


@pytest.mark.slow
def test_cli_nproc_2_trains_and_resumes_after_sigterm(tmp_path, site):
    """`asled train --nproc 2`: torchrun, SIGTERM forwarded -> exit 75 + resume file; rerun finishes; result
    matches one process (Adam over 12 steps: atol 1e-5)."""
    settings = {"iterations": 12, "batch_size": 2, "val_every": 6, "checkpoint_every": 3}
    one = make_workspace(tmp_path / "one", site, **settings)
    run_to_end(one)
    two = make_workspace(tmp_path / "two", site, **settings, devices=2)
    proc = start_and_wait_for_resume_file(two, delay=0.3)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == RESUME_EXIT_CODE, stderr[-3000:]
    assert not files(two)["ckpt"].exists()
    saved = torch.load(files(two)["resume"], weights_only=True)
    assert saved["world_size"] == 2 and 0 < saved["iteration"] < 12

    result = subprocess.run(asled_cmd(), cwd=two, env=env(two), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"at iteration {saved['iteration']}/12" in result.stderr
    a, b = (torch.load(files(root)["ckpt"], weights_only=True) for root in (one, two))
    assert b["iteration"] == 12 and not files(two)["resume"].exists()
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, atol=1e-5, rtol=1e-4)
    rows = [Path(files(root)["csv"]).read_text().splitlines() for root in (one, two)]
    assert [r.split(",")[0] for r in rows[0]] == [r.split(",")[0] for r in rows[1]]
    assert METHOD in str(files(two)["ckpt"])
