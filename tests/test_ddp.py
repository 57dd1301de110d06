"""Multi-process training: 2 CPU processes under torchrun (gloo) stay in sync and only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.distributed as dist

from mraa.checkpoint import read_checkpoint

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from pathlib import Path

    import torch

    from mraa.config import apply_overrides, load_config
    from mraa.models import build_models
    from mraa.training.train import train

    torch.set_num_threads(1)
    config, out = sys.argv[1], Path(sys.argv[2])
    rank = int(os.environ["RANK"])


    class Pairs(torch.utils.data.Dataset):
        def __init__(self):
            self.images = torch.rand(8, 2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return {"source": self.images[i, 0], "driving": self.images[i, 1]}


    cfg = apply_overrides(load_config(config), [
        "train_params.batch_size=4", "train_params.num_epochs=2", "train_params.checkpoint_freq=1",
        "train_params.dataloader_workers=0",
    ])
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    models = build_models(cfg.model_params)
    result = train(cfg, models, Pairs(), out / "run", device="cpu", seed=7, progress=False, tensorboard=False)
    digest = hashlib.sha256()
    for name, module in models.items():
        if name != "avd_network":
            for key, value in sorted(module.named_parameters()):
                digest.update(key.encode() + value.detach().numpy().tobytes())
    record = {"hash": digest.hexdigest(), "steps": result.steps, "pairs": result.pairs_seen,
              "checkpoint": str(result.checkpoint) if result.checkpoint else None}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    """
)


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
def test_two_process_ddp_ranks_stay_in_sync(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*command, str(script), str(TINY), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["hash"] == ranks[1]["hash"]
    # global batch 4 = 2 per process; 8 pairs per epoch -> 2 steps per epoch, 2 epochs
    assert [(r["steps"], r["pairs"]) for r in ranks] == [(4, 16), (4, 16)]
    assert (
        ranks[0]["checkpoint"].endswith("00000001-cpk-reconstruction.pth") and ranks[1]["checkpoint"] is None
    )

    run = tmp_path / "run"
    # epoch 0's checkpoint was deleted once epoch 1's was saved (checkpoint_keep_every 10 > checkpoint_freq 1)
    assert sorted(p.name for p in run.glob("*.pth")) == ["00000001-cpk-reconstruction.pth"]
    state = read_checkpoint(run / "00000001-cpk-reconstruction.pth")["mraa_train_state"]
    assert state["world_size"] == 2 and state["pairs_seen"] == 16
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["pairs_seen"] for r in steps if r["kind"] == "step"] == [4, 8, 12, 16]  # written once (rank 0)
