"""Fingerprints of PyTorch values: tensors, networks (``nn.Module``), optimizers, data sets and
data loaders.

A tensor is its dtype, shape and values (of a large one a sample: runs of consecutive values as
fingerprint.sample_runs takes them, on its device, so a GPU tensor moves only the sample to the
host); the device is not content: the same values on the CPU and a GPU are the same data. A network
is its class, its architecture (its repr), its train/eval mode and every tensor of its
``state_dict`` (weights and buffers), the sample budget shared among them. An optimizer is its
hyperparameters and its state (Adam's moments).

Nothing here imports torch: a value is only recognised when the notebook has imported it.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import xxhash

from .fingerprint import sample_positions, sample_runs

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # a repr naming a function: its address changes every session
_MIN_TENSOR_BUDGET = 4096  # bytes per tensor of a network with very many tensors


def torch_kind(value: Any) -> str | None:
    """'tensor', 'module', 'optimizer', 'loader' or 'dataset' for such a value of an imported
    torch, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, torch.nn.Module):
        return "module"
    if isinstance(value, torch.optim.Optimizer):
        return "optimizer"
    if isinstance(value, (torch.dtype, torch.device)):
        return "value"  # its repr is its content
    if isinstance(value, torch.Generator):
        return "random"
    schedulers = getattr(torch.optim, "lr_scheduler", None)
    if schedulers is not None and isinstance(value, getattr(schedulers, "LRScheduler", ())):
        return "scheduler"
    data = getattr(torch.utils, "data", None)
    if data is not None:
        if isinstance(value, data.DataLoader):
            return "loader"
        if isinstance(value, data.Dataset) and not isinstance(value, data.IterableDataset):
            return "dataset"  # a stream's content is only known by reading it
    return None


def tensor_summary(tensor: Any) -> dict[str, Any]:
    torch = sys.modules["torch"]
    if torch.nn.parameter.is_lazy(tensor):
        return {"type": type(tensor).__name__}  # shape and dtype are not known yet
    summary: dict[str, Any] = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch."),
                               "device": str(tensor.device)}
    if tensor.dim() == 0 and tensor.layout == torch.strided and not tensor.is_meta:
        summary["value"] = tensor.item()  # a loss: what `show` should print
    if tensor.requires_grad:
        summary["requires_grad"] = True
    return summary


def tensor_digest(tensor: Any, sample_bytes: int) -> tuple[str, bool]:
    """(digest, sampled) of a tensor's dtype, shape and values."""
    torch = sys.modules["torch"]
    if torch.nn.parameter.is_lazy(tensor):  # a LazyLinear's before its first call: not even a shape yet
        return xxhash.xxh3_128_hexdigest(f"torch:{type(tensor).__name__}".encode()), False
    hasher = xxhash.xxh3_128(f"torch:{tensor.dtype}{tuple(tensor.shape)}:{tensor.layout}".encode())
    if tensor.is_meta:  # a model built on "meta" before its weights are loaded: no values
        hasher.update(b"no values")
        return hasher.hexdigest(), False
    values = tensor.detach()
    if values.is_quantized:  # the values it stands for: its integers with their scales
        values = values.dequantize()
    if values.layout not in (torch.strided, torch.sparse_coo):  # CSR, CSC, BSR: by their coordinates
        values = values.to_sparse()
    if values.is_sparse:  # a COO tensor is its coordinates and values
        values = values.coalesce()
        digests = [tensor_digest(part, sample_bytes // 2) for part in (values.indices(), values.values())]
        hasher.update("".join(d for d, _ in digests).encode())
        return hasher.hexdigest(), any(s for _, s in digests)
    values = values.resolve_conj().resolve_neg()  # lazily conjugated or negated views: the values as read
    wanted = max(1, sample_bytes // values.element_size())  # elements to hash
    sampled = values.numel() > wanted
    if not sampled:
        flat = values.reshape(-1)
    elif values.is_contiguous():  # runs of consecutive values, in C order (sample_runs), taken on the device
        starts, length = sample_runs(values.numel(), wanted)
        whole = values.reshape(-1)
        flat = torch.cat([whole[start:start + length] for start in starts])
    else:  # the same positions of a view (a transpose), gathered without copying it whole
        positions = torch.from_numpy(sample_positions(values.numel(), wanted)).to(values.device)
        flat = torch.take(values, positions)
    host = flat.to("cpu").contiguous()
    hasher.update(host.view(torch.uint8).numpy().data)  # every dtype, bfloat16 too, as its bytes
    return hasher.hexdigest(), sampled


def module_fingerprint(module: Any, sample_bytes: int) -> tuple[str, dict[str, Any]]:
    state = module.state_dict()
    budget = max(_MIN_TENSOR_BUDGET, sample_bytes // max(1, len(state)))
    hasher = xxhash.xxh3_128(_class_name(module).encode())
    hasher.update(_ADDRESS.sub("", repr(module)).encode())
    hasher.update(b"train" if module.training else b"eval")
    sampled = False
    for name, value in state.items():
        hasher.update(name.encode())
        if torch_kind(value) == "tensor":
            digest, part_sampled = tensor_digest(value, budget)
            sampled = sampled or part_sampled
        else:  # a module's extra state (get_extra_state): any value
            from .fingerprint import fingerprint

            digest = str(fingerprint(value, budget).digest)
        hasher.update(digest.encode())
    torch = sys.modules["torch"]
    parameters = [p for p in module.parameters() if not torch.nn.parameter.is_lazy(p)]
    lazy = len(parameters) < len(list(module.parameters()))  # a LazyLinear before its first call
    fields = {"parameters": "not known yet" if lazy else f"{sum(p.numel() for p in parameters):,}",
              "tensors": str(len(state)), "mode": "train" if module.training else "eval"}
    if parameters:
        fields["dtype"] = str(parameters[0].dtype).removeprefix("torch.")
        fields["device"] = str(parameters[0].device)
    summary: dict[str, Any] = {"type": _class_name(module), "fields": fields}  # as a settings object's
    if sampled:
        summary["sampled"] = True
    return hasher.hexdigest(), summary


def optimizer_fingerprint(optimizer: Any, sample_bytes: int) -> tuple[str, dict[str, Any]]:
    state = optimizer.state_dict()
    groups = [{k: v for k, v in group.items() if k != "params"} for group in state["param_groups"]]
    hasher = xxhash.xxh3_128(_class_name(optimizer).encode())
    hasher.update(_ADDRESS.sub("", repr(sorted((sorted(g.items(), key=str) for g in groups), key=str))).encode())
    tensors = [(key, name, value) for key, per_param in sorted(state["state"].items())
               for name, value in sorted(per_param.items()) if torch_kind(value) == "tensor"]
    budget = max(_MIN_TENSOR_BUDGET, sample_bytes // max(1, len(tensors)))
    sampled = False
    for key, name, value in tensors:
        digest, part_sampled = tensor_digest(value, budget)
        sampled = sampled or part_sampled
        hasher.update(f"{key}.{name}={digest}".encode())
    fields = {k: _ADDRESS.sub("", repr(v))[:60] for k, v in (groups[0].items() if groups else ())}
    if len(groups) > 1:  # per-layer learning rates: the first group's, and how many there are
        fields["param_groups"] = str(len(groups))
    summary: dict[str, Any] = {"type": _class_name(optimizer), "fields": fields}
    if sampled:
        summary["sampled"] = True
    return hasher.hexdigest(), summary


def dataset_fingerprint(dataset: Any, sample_bytes: int) -> tuple[str | None, dict[str, Any]]:
    """A map-style dataset by its attributes (a TensorDataset's tensors, a Subset's dataset and
    indices, a custom dataset's arrays); none when one of them has no fingerprint (an open file,
    a transform object), which could change the data unseen."""
    from .fingerprint import fingerprint

    summary: dict[str, Any] = {"type": _class_name(dataset)}
    hasher = xxhash.xxh3_128(summary["type"].encode())
    for name, value in sorted(vars(dataset).items()):
        print_ = fingerprint(value, sample_bytes)
        if print_.digest is None:
            summary["unhashed"] = name
            return None, summary
        hasher.update(f"{name}={print_.digest};".encode())
        if print_.summary.get("sampled"):
            summary["sampled"] = True
    return hasher.hexdigest(), summary


def loader_fingerprint(loader: Any, sample_bytes: int) -> tuple[str | None, dict[str, Any]]:
    """A DataLoader: its dataset and how it batches (batch size, sampler, last batch dropped);
    the batching settings are fields `show` prints and `diff` compares."""
    from .fingerprint import fingerprint

    data = fingerprint(loader.dataset, sample_bytes)
    fields = {"batch_size": repr(loader.batch_size), "sampler": type(loader.sampler).__name__,
              "drop_last": repr(loader.drop_last), "dataset": type(loader.dataset).__name__}
    try:
        fields["rows"] = str(len(loader.dataset))
    except TypeError:  # a dataset without a length
        pass
    summary: dict[str, Any] = {"type": _class_name(loader), "fields": fields}
    if data.summary.get("sampled"):
        summary["sampled"] = True
    if data.digest is None:
        return None, summary
    hasher = xxhash.xxh3_128(f"{summary['type']}:{data.digest}".encode())
    hasher.update(repr(sorted(fields.items())).encode())
    return hasher.hexdigest(), summary


def scheduler_fingerprint(scheduler: Any, sample_bytes: int) -> tuple[str | None, dict[str, Any]]:
    """A learning-rate schedule by its settings and where it is (its state_dict, which leaves out
    the optimizer it drives); the settings are fields `show` prints and `diff` compares."""
    from .fingerprint import fingerprint

    state = {k: v for k, v in scheduler.state_dict().items() if not k.startswith("_")}
    print_ = fingerprint(state, sample_bytes)
    summary = {"type": _class_name(scheduler),
               "fields": {k: _ADDRESS.sub("", repr(v))[:60] for k, v in state.items()}}
    if print_.digest is None:
        return None, summary
    return xxhash.xxh3_128_hexdigest(f"{summary['type']}:{print_.digest}".encode()), summary


def generator_fingerprint(generator: Any) -> tuple[str, dict[str, Any]]:
    """A torch.Generator by its state, as a numpy or Python random generator."""
    state = generator.get_state()
    return tensor_digest(state, state.numel())[0], {"type": "Generator", "device": str(generator.device)}


def _class_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def as_numpy(tensor: Any) -> Any:
    """A tensor's values as a numpy array on the host (bfloat16 and other types numpy lacks as float32)."""
    values = tensor.detach().to("cpu").resolve_conj().resolve_neg()
    try:
        return values.numpy()
    except TypeError:
        return values.float().numpy()
