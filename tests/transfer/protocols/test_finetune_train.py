"""The finetuning loop (transfer/protocols/finetune_loop.py) against hand-written references: data
order, loss, the SGD-Nesterov + cosine recipe, exact resumption from a checkpoint, and ordered
prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from datasets import ImageDataset, build_transform, load_split
from tests.fixtures.host_syncs import count_host_syncs
from tests.fixtures.threads import one_torch_thread  # noqa: F401 (autouse)
from transfer.protocols import finetune_loop as train_module
from transfer.protocols.finetune_loop import (
    FinetuneError,
    SeededSamples,
    StepBatchSampler,
    TrainConfig,
    correct_count,
    finetune_loss,
    make_eval_loader,
    make_train_loader,
    predict,
    train_steps,
)
from transfer.runtime.distributed import Distributed

SIZE = 8


def digits(split: str, kind: str = "eval") -> ImageDataset:
    return ImageDataset(load_split("digits", split), build_transform(kind, SIZE, True))


def tiny_net(batch_norm: bool = False) -> nn.Module:
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, stride=2, padding=1)]
    layers += [nn.BatchNorm2d(4)] if batch_norm else []
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)]
    return nn.Sequential(*layers)


def test_sampler_epochs_are_partitions_and_ranks_split_the_global_batch():
    one = StepBatchSampler(50, 16, seed=3, context=Distributed())
    assert one.steps_per_epoch == 4  # 3 full batches + the tail of 2, kept like the original
    for epoch in range(2):
        steps = range(epoch * 4, epoch * 4 + 4)
        seen = np.concatenate([one.global_batch(s)[1] for s in steps])
        assert sorted(seen) == list(range(50))
    assert not np.array_equal(one.permutation(0), one.permutation(1))
    assert [one.global_batch_size(s) for s in range(4)] == [16, 16, 16, 2]

    ranks = [StepBatchSampler(50, 16, 3, Distributed(rank=r, world_size=2)) for r in range(2)]
    assert ranks[0].steps_per_epoch == 3  # a tail of 2 would leave a rank one image: dropped
    for step in range(3):
        shares = [s.rank_share(step) for s in ranks]
        assert [len(share) for share in shares] == [8, 8]
        # same images, same augmentation seeds as one process, rank 0 holding the first half
        assert shares[0] + shares[1] == one.rank_share(step)
    with pytest.raises(FinetuneError, match="fewer than 2 images per rank"):
        StepBatchSampler(50, 3, 0, Distributed(rank=0, world_size=2))


def test_seeded_samples_repeat_their_augmentation_and_leave_the_rng_alone():
    samples = SeededSamples(digits("train", "train"))
    before = torch.get_rng_state()
    first, _ = samples[(5, 123)]
    again, _ = samples[(5, 123)]
    other, _ = samples[(5, 124)]
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(torch.get_rng_state(), before)


def test_loss_is_the_global_batch_mean_for_any_split_over_ranks():
    torch.manual_seed(1)
    logits = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 3, 1, 1, 2, 0])
    log_probs = logits - torch.logsumexp(logits, 1, keepdim=True)
    reference = -log_probs[torch.arange(6), labels].mean()
    torch.testing.assert_close(finetune_loss(logits, labels, 6).double(), reference)
    halves = [finetune_loss(logits[:4], labels[:4], 6, 2),
              finetune_loss(logits[4:], labels[4:], 6, 2)]
    torch.testing.assert_close((sum(halves) / 2).double(), reference)  # what DDP's average gives

    targets = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.float32)
    multi = logits[:3].float()
    p = torch.sigmoid(multi.double())
    bce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p)).mean()
    torch.testing.assert_close(finetune_loss(multi, targets, 3).double(), bce, rtol=1e-6,
                               atol=1e-6)


def test_correct_count_single_and_multi_label():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.0], [-0.2, 0.3]])
    assert correct_count(logits, torch.tensor([0, 0, 1])).item() == 2
    multi = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # logits >= 0: [1, 0], [1, 1], [0, 1]; per-sample share of matching classes: 1 + 0.5 + 1
    assert correct_count(logits, multi).item() == pytest.approx(2.5)


def test_recipe_matches_hand_written_sgd_nesterov_with_cosine_annealing():
    """Three steps of train_steps against an explicit update on the same batches."""
    dataset = digits("train")
    config = TrainConfig(steps=3, lr=0.2, weight_decay=0.01, batch_size=16, channels_last=False)
    loader = make_train_loader(dataset, 16, 0, Distributed(), 0, "cpu")
    net = tiny_net()
    reference = tiny_net()
    train_steps(net, loader, config, "cpu", progress=False)

    params = list(reference.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for step in range(3):
        lr = 0.5 * config.lr * (1 + math.cos(math.pi * step / config.steps))
        indices = [i for i, _ in loader.batch_sampler.rank_share(step)]
        images = torch.stack([dataset[i][0] for i in indices])
        labels = torch.stack([dataset[i][1] for i in indices])
        reference.zero_grad()
        nn.functional.cross_entropy(reference(images), labels).backward()
        with torch.no_grad():
            for p, v in zip(params, velocity, strict=True):
                grad = p.grad + config.weight_decay * p
                v.mul_(0.9).add_(grad)
                p.sub_(lr * (grad + 0.9 * v))
    for ours, theirs in zip(net.parameters(), params, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-5)


def test_interrupted_training_resumes_exactly(tmp_path, monkeypatch):
    dataset = digits("train", "train")
    config = TrainConfig(steps=6, lr=0.1, weight_decay=1e-3, batch_size=16, checkpoint_every=2,
                         channels_last=False)
    straight = tiny_net(batch_norm=True)
    reference = train_steps(straight, make_train_loader(dataset, 16, 0, Distributed(), 0, "cpu"),
                            config, "cpu", progress=False)

    checkpoint = tmp_path / "ckpt" / "point.pt"
    real_save = train_module.save_checkpoint

    def save_then_interrupt(path, state, context):
        real_save(path, state, context)
        if state["step"] == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train_steps(tiny_net(batch_norm=True),
                    make_train_loader(dataset, 16, 0, Distributed(), 0, "cpu"), config, "cpu",
                    checkpoint=checkpoint, progress=False)
    monkeypatch.undo()
    assert [p.name for p in checkpoint.parent.iterdir()] == ["point.pt"]  # no temporary file
    assert torch.load(checkpoint, weights_only=True)["step"] == 4

    messages = []
    resumed_net = tiny_net(batch_norm=True)
    resumed = train_steps(resumed_net, make_train_loader(dataset, 16, 0, Distributed(), 0, "cpu"),
                          config, "cpu", checkpoint=checkpoint, progress=False,
                          log=messages.append)
    assert resumed.resumed_from == 4
    assert any("resuming from step 4 of 6" in m for m in messages)
    for key, value in straight.state_dict().items():  # weights and BN buffers
        assert torch.equal(resumed_net.state_dict()[key], value), key
    assert resumed.loss == pytest.approx(reference.loss, rel=1e-12)
    assert resumed.accuracy == pytest.approx(reference.accuracy, rel=1e-12)

    other = TrainConfig(**{**config.__dict__, "lr": 0.05})  # another recipe: not resumed
    messages.clear()
    fresh = train_steps(tiny_net(batch_norm=True),
                        make_train_loader(dataset, 16, 0, Distributed(), 0, "cpu"), other, "cpu",
                        checkpoint=checkpoint, progress=False, log=messages.append)
    assert fresh.resumed_from == 0
    assert any("written by another run (recipe.lr differ)" in m for m in messages), messages


def test_predict_returns_eval_mode_logits_in_dataset_order():
    dataset = digits("test")
    net = tiny_net(batch_norm=True)
    with torch.no_grad():  # give BN running statistics that differ from batch statistics
        net[1].running_mean.fill_(0.3)
        net[1].running_var.fill_(2.0)
    net.train()
    logits = predict(net, make_eval_loader(dataset, 64, Distributed(), 0, "cpu"), len(dataset),
                     "cpu", progress=False)
    assert net.training  # restored
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    with torch.no_grad():
        expected = net.eval()(images)
    assert logits.shape == (597, 10)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_a_training_step_never_waits_for_the_device():
    """What a GPU would wait for, counted on the CPU (tests/fixtures/host_syncs.py): none in a
    step, and in the loop only the progress bar's read every LOG_EVERY steps and the final
    sums."""
    dataset = digits("train")
    steps = 2 * train_module.LOG_EVERY
    config = TrainConfig(steps=steps, lr=0.1, weight_decay=1e-4, batch_size=8,
                         channels_last=False)
    net = tiny_net(batch_norm=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    step = train_module.TrainStep(net, optimizer, scheduler, config, "cpu")
    images = torch.stack([dataset[i][0] for i in range(8)])
    labels = torch.stack([dataset[i][1] for i in range(8)])
    with count_host_syncs() as syncs:
        step(images, labels, 8)
        step(images, labels, 8)
    assert syncs.calls == []
    assert step.meters[2].item() == 16  # the sample count was kept on the device

    loader = make_train_loader(dataset, 8, 0, Distributed(), 0, "cpu")
    net = tiny_net(batch_norm=True)
    with count_host_syncs() as syncs:
        train_steps(net, loader, config, "cpu", progress=True)
    assert len(syncs) <= steps // train_module.LOG_EVERY + 1, syncs.calls


def test_fp32_trains_with_tf32_off_and_tf32_with_it_on():
    seen = []

    class Spy(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny_net()

        def forward(self, images):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return self.net(images)

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        dataset = digits("train")
        for precision, expected in (("fp32", (False, False)), ("tf32", (True, True))):
            seen.clear()
            config = TrainConfig(steps=2, lr=0.1, weight_decay=0.0, batch_size=8,
                                 precision=precision, channels_last=False)
            net = Spy()
            train_steps(net, make_train_loader(dataset, 8, 0, Distributed(), 0, "cpu"), config,
                        "cpu", progress=False)
            predict(net, make_eval_loader(digits("test"), 300, Distributed(), 0, "cpu"), 597,
                    "cpu", precision=precision, channels_last=False, progress=False)
            assert seen == [expected] * 4, precision  # two steps, two eval batches
            # restored afterwards
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
                True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_eval_batch_is_twice_the_per_rank_training_batch():
    assert train_module.eval_batch_size(64, 1) == 128
    assert train_module.eval_batch_size(64, 4) == 32
    assert train_module.eval_batch_size(10, 4) == 6  # ranks train on ceil(10 / 4) images


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_cuda_training_step_does_not_synchronise(precision):
    """On the GPU itself: torch's sync debug mode turns any implicit host sync into an error."""
    from transfer.runtime.precision import bf16_supported, float32_mode

    if precision == "bf16" and not bf16_supported("cuda"):
        pytest.skip("no native bf16 on this GPU")
    dataset = digits("train")
    net = tiny_net(batch_norm=True).cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    config = TrainConfig(steps=10, lr=0.1, weight_decay=0.0, batch_size=8, precision=precision)
    step = train_module.TrainStep(net, optimizer, scheduler, config, "cuda")
    images = torch.stack([dataset[i][0] for i in range(8)]).pin_memory()
    labels = torch.stack([dataset[i][1] for i in range(8)]).pin_memory()
    with float32_mode(precision):
        step(images, labels, 8)  # first step: allocations, cuDNN's choices
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(3):
                step(images, labels, 8)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert step.meters[2].item() == 32
