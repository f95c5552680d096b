"""Tensor-resident loaders: the same samples as Avalanche's loaders, sliced from whole tensors."""

import torch
from avalanche.benchmarks.utils import AvalancheDataset
from torch.utils.data import TensorDataset

from ffcl.data import load_dataset, make_stream
from ffcl.data.loaders import ReplayTensorLoader, TensorLoader, dataset_tensors


def _experience_dataset():
    stream = make_stream(load_dataset("digits"), 5)
    return stream.benchmark.train_stream[1].dataset


def test_dataset_tensors_match_getitem():
    ds = _experience_dataset()
    x, y, t = dataset_tensors(ds)
    assert len(x) == len(ds)
    for i in (0, 7, len(ds) // 2, len(ds) - 1):
        xi, yi, ti = ds[i]
        assert torch.equal(x[i], xi) and int(y[i]) == int(yi) and int(t[i]) == int(ti)
    assert set(y.tolist()) == {2, 3}


def test_dataset_tensors_apply_transforms_through_the_fallback():
    ds = _experience_dataset()
    doubled = ds.replace_current_transform_group(lambda x: x * 2)
    x, _, _ = dataset_tensors(doubled)
    assert torch.allclose(x[0], ds[0][0] * 2)


def test_dataset_tensors_of_a_plain_avalanche_dataset():
    base = TensorDataset(torch.arange(10.0)[:, None], torch.arange(10) % 3, torch.zeros(10, dtype=torch.long))
    x, y, t = dataset_tensors(AvalancheDataset([base]))
    assert torch.equal(x[:, 0], torch.arange(10.0)) and torch.equal(y, torch.arange(10) % 3)
    other = TensorDataset(torch.arange(10.0, 15.0)[:, None], torch.arange(5) + 10, torch.zeros(5, dtype=torch.long))
    both = AvalancheDataset([base, other]).subset([12, 3, 14, 0])
    x, y, _ = dataset_tensors(both)
    assert x[:, 0].tolist() == [12.0, 3.0, 14.0, 0.0] and y.tolist() == [12, 0, 14, 0]


def test_tensor_loader_visits_every_sample_once_per_epoch():
    x = torch.arange(23.0)
    loader = TensorLoader([x, x.long(), x.long() * 0], 5)
    assert len(loader) == 5
    epoch1 = torch.cat([b[0] for b in loader])
    epoch2 = torch.cat([b[0] for b in loader])
    assert sorted(epoch1.tolist()) == x.tolist() and not torch.equal(epoch1, epoch2)
    ordered = TensorLoader([x], 5, shuffle=False)
    assert torch.equal(torch.cat([b[0] for b in ordered]), x)
    assert len(TensorLoader([x], 5, drop_last=True)) == 4


def test_replay_loader_joins_buffer_samples_to_every_minibatch():
    data = [torch.arange(20.0), torch.zeros(20, dtype=torch.long), torch.zeros(20, dtype=torch.long)]
    memory = [-torch.arange(1.0, 4.0), torch.ones(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)]
    loader = ReplayTensorLoader(data, memory, batch_size=4, batch_size_mem=2)
    batches = list(loader)
    assert len(batches) == 5
    for x, y, _ in batches:
        assert (x[:4] >= 0).all() and (y[:4] == 0).all()
        assert (x[4:] < 0).all() and (y[4:] == 1).all() and len(x) <= 6
    replayed = torch.cat([b[0][4:] for b in batches])
    assert set(replayed.tolist()) == {-1.0, -2.0, -3.0}  # the buffer is cycled through


def test_checkpointed_loader_carries_no_data():
    import pickle

    loader = pickle.loads(pickle.dumps(TensorLoader([torch.ones(100, 50)], 10)))
    assert loader.tensors[0].numel() == 0
