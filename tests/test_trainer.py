"""The reference trainer and evaluator (builder.train.model, trainer, checkpoint, evaluation; scripts/train.py and
scripts/evaluate.py) on a small generated dataset with a validation split."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import is_fp8_available
from safetensors.torch import load_file

from builder.contract.errors import UsageError
from builder.train.checkpoint import STATE_FILE, checkpoint_dir
from builder.train.config import TrainConfig
from builder.train.evaluation import MODEL_INPUTS
from builder.train.loader import torch_dataset
from builder.train.losses import total_loss
from builder.train.model import FgBgNet
from builder.train.trainer import METRICS_FILE, BatchStream, make_accelerator, train, train_step
from tests.conftest import ROOT, Generation, env, run_generate, run_generate_together

TRAIN, EVALUATE = ROOT / "scripts" / "train.py", ROOT / "scripts" / "evaluate.py"
SMALL_NET = {"width": 8, "levels": 2}
# 24 train rows in 3 shards, 4 validation rows (1 held-out background x 1 held-out cut-out x 2 flips x 2)
TRAIN_ROWS, VALIDATION_ROWS = 24, 4


@pytest.fixture(autouse=True)
def one_thread():
    """This pytest process loaded torch with spinning OpenMP waits; on shared cores 2 threads crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("train_data") / "out"
    run_generate(out, "--demo", "--resolution", "32", "--placements", "2", "--validation-backgrounds", "1",
                 "--validation-foregrounds", "1", "--depth-model", str(tiny_model), "--depth-input-size", "28",
                 "--shard-size", "8", "--batch-size", "8")
    return out


def fixed_batch(dataset, rows: int = 4) -> dict:
    loader = torch.utils.data.DataLoader(torch_dataset(dataset, columns=MODEL_INPUTS), batch_size=rows)
    return next(iter(loader))


def test_overfits_one_fixed_batch(dataset):
    torch.manual_seed(0)
    batch, model = fixed_batch(dataset), FgBgNet(**SMALL_NET)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    accelerator = Accelerator(cpu=True)
    with torch.no_grad():
        first = total_loss(*model(batch["bg"], batch["fg_bg"]), batch).item()
    for _ in range(100):
        last = train_step(model, optimizer, batch, accelerator).item()
    assert last <= first / 5, (first, last)


@pytest.fixture
def cpu_accelerate(monkeypatch):
    """A CPU process as `accelerate launch --cpu` starts one, with accelerate's state unset before and after (it
    keeps one per process, fixed by the first Accelerator)."""
    from accelerate.state import AcceleratorState

    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("asked, expected", [(None, torch.float32), ("no", torch.float32), ("bf16", torch.bfloat16)],
                         ids=["unset", "no", "bf16"])
def test_mixed_precision_is_what_accelerate_was_told(dataset, monkeypatch, cpu_accelerate, asked, expected):
    """`accelerate launch --mixed_precision X` and its config file reach the script as ACCELERATE_MIXED_PRECISION;
    nothing set: none. A training step runs under it on CPU, its convolutions in the dtype asked for."""
    if asked is None:
        monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", asked)
    accelerator = make_accelerator()
    assert accelerator.mixed_precision == (asked or "no") and accelerator.device.type == "cpu"
    model = FgBgNet(**SMALL_NET)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    seen = []
    model.head.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    before = model.head.weight.detach().clone()
    loss = train_step(model, optimizer, fixed_batch(dataset), accelerator)
    assert seen == [expected] and torch.isfinite(loss) and not torch.equal(model.head.weight, before)


@pytest.mark.parametrize("asked, message", [
    pytest.param("fp16", "fp16 does not run on CPU", id="fp16"),  # accelerate would train in fp32 without a word
    pytest.param("fp8", "accelerate refused its settings: .* requires `transformer_engine` or `torchao`", id="fp8",
                 marks=pytest.mark.skipif(is_fp8_available(), reason="an fp8 library is installed")),
])
def test_mixed_precision_that_cannot_apply_is_refused(monkeypatch, cpu_accelerate, asked, message):
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", asked)
    with pytest.raises(UsageError, match=message):
        make_accelerator()


def test_save_pretrained_from_pretrained_round_trip(dataset, tmp_path):
    torch.manual_seed(1)
    model, batch = FgBgNet(width=4, levels=3).eval(), fixed_batch(dataset)
    model.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text()) == {"width": 4, "levels": 3}
    loaded = FgBgNet.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        for want, got in zip(model(batch["bg"], batch["fg_bg"]), loaded(batch["bg"], batch["fg_bg"])):
            assert torch.equal(want, got)


def test_odd_sides_are_padded_and_cropped_back():
    mask_logits, disparity = FgBgNet(**SMALL_NET)(torch.zeros(1, 3, 30, 27), torch.zeros(1, 3, 30, 27))
    assert mask_logits.shape == disparity.shape == (1, 1, 30, 27)


def test_batch_stream_resumes_at_its_position_across_epochs(dataset):
    def stream(position=(0, 0)) -> BatchStream:
        data = torch_dataset(dataset, shuffle=True, seed=5, columns=["sample_id"], rank=0, world_size=1)
        return BatchStream(data, batch_size=4, workers=0, position=position)

    uninterrupted = stream()
    ids = [uninterrupted.next()["sample_id"].tolist() for _ in range(9)]  # 6 batches per epoch: into epoch 1
    assert uninterrupted.position == (1, 3)
    assert len(set(sum(ids[:6], []))) == TRAIN_ROWS  # epoch 0 read every row once
    assert ids[6:] != ids[:3]  # set_epoch gave epoch 1 its own order
    resumed = stream(position=(0, 4))
    assert [resumed.next()["sample_id"].tolist() for _ in range(5)] == ids[4:]


def small_config(dataset, run, **changes) -> TrainConfig:
    settings = {"max_steps": 6, "batch_size": 4, "eval_every": 0, "save_every": 3, "workers": 0, **SMALL_NET}
    return TrainConfig(dataset=str(dataset), output_dir=str(run), **{**settings, **changes})


def steps_logged(run) -> list[int]:
    return [json.loads(line)["step"] for line in (run / METRICS_FILE).read_text().splitlines()]


def test_resume_continues_at_the_saved_step_as_an_uninterrupted_run(dataset, tmp_path):
    train(small_config(dataset, tmp_path / "straight"))
    train(small_config(dataset, tmp_path / "resumed", max_steps=3))
    assert steps_logged(tmp_path / "resumed") == [3]
    train(small_config(dataset, tmp_path / "resumed"))
    assert steps_logged(tmp_path / "resumed") == [3, 6]
    for step in (3, 6):
        straight, resumed = (checkpoint_dir(tmp_path / name, step) for name in ("straight", "resumed"))
        assert (straight / STATE_FILE).read_text() == (resumed / STATE_FILE).read_text()
        want, got = load_file(straight / "model.safetensors"), load_file(resumed / "model.safetensors")
        assert all(torch.equal(want[name], got[name]) for name in want), f"weights differ at step {step}"


def test_resume_refuses_other_settings(dataset, tmp_path):
    train(small_config(dataset, tmp_path / "run", max_steps=1))
    with pytest.raises(UsageError, match="--lr"):
        train(small_config(dataset, tmp_path / "run", lr=0.5))


def run_script(*command, launcher=()) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *launcher, *map(str, command)], capture_output=True, text=True,
                            env=env(), timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


ACCELERATE_2 = ("-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no")


@pytest.mark.parametrize("launcher", [(), ACCELERATE_2], ids=["1-process", "accelerate-2-processes"])
def test_train_then_evaluate_end_to_end(dataset, tmp_path, launcher):
    run = tmp_path / "run"
    run_script(TRAIN, "--dataset", dataset, "--output-dir", run, "--max-steps", "4", "--batch-size", "4",
               "--eval-every", "2", "--save-every", "2", "--workers", "0", "--width", "8", "--levels", "2",
               launcher=launcher)
    records = [json.loads(line) for line in (run / METRICS_FILE).read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert all(r["validation"]["rows"] == VALIDATION_ROWS for r in records)  # every row once over the ranks
    state = json.loads((checkpoint_dir(run, 4) / STATE_FILE).read_text())
    assert len(state["positions"]) == (2 if launcher else 1)
    printed = json.loads(run_script(EVALUATE, run, dataset, "--output", tmp_path / "eval.json").stdout)
    assert printed == json.loads((tmp_path / "eval.json").read_text())
    assert printed["rows"] == VALIDATION_ROWS and printed["model"] == str(checkpoint_dir(run, 4))
    assert printed["mask_iou"] == pytest.approx(records[-1]["validation"]["mask_iou"])
    for name in ("depth_absrel", "depth_delta1"):
        assert printed[name] == pytest.approx(records[-1]["validation"][name])


def test_evaluate_scores_one_datasets_labels_against_another(dataset, tmp_path):
    other = tmp_path / "other"
    making_other = Generation(other, "--demo", "--resolution", "32", "--placements", "1", "--no-depth")
    same = json.loads(run_script(EVALUATE, "--labels", dataset, dataset, "--split", "train").stdout)
    run_generate_together(making_other)  # it ran beside the evaluation
    assert same["rows"] == TRAIN_ROWS and same["mask_iou"] == 1.0
    assert same["depth_absrel"] < 1e-9 and same["depth_delta1"] == 1.0
    refused = subprocess.run([sys.executable, str(EVALUATE), "--labels", other, dataset, "--split", "train"],
                             capture_output=True, text=True, env=env(), timeout=240)
    assert refused.returncode == 2 and "--no-depth" in refused.stderr, refused.stderr[-2000:]
