"""Trials on an existing Dask cluster: ``--jobs dask://HOST:PORT``, or ``--jobs dask`` for the
``distributed.Client`` the notebook already made.

The study stays in the kernel: it asks Optuna, records each trial's run and tells Optuna;
only the evaluation of the cell body travels. The values the body reads are sent to the
workers once per study; each trial sends its parameters and gets back plain data.
"""

from __future__ import annotations

from typing import Any

from ..capture import cell_name_use
from ..errors import MissingDependency, XPError
from ..fingerprint import is_recordable
from ._evaluate import Evaluation, evaluate_remotely

_NOT_SENT = frozenset({"xp", "In", "Out", "get_ipython", "exit", "quit", "open"})
_CONNECT_TIMEOUT_S = 10


def is_cluster_address(text: str) -> bool:
    return text == "dask" or text.startswith(("dask://", "tcp://", "tls://"))


def _client(address: str) -> Any:
    try:
        import distributed
    except ImportError:
        raise MissingDependency("distributed", "--jobs dask://...", extra="team") from None
    if address == "dask":
        try:
            return distributed.get_client()
        except ValueError:
            raise XPError("--jobs dask uses the notebook's distributed.Client, and there is none: "
                          "create one (Client('tcp://HOST:PORT')) or pass --jobs dask://HOST:PORT") from None
    target = "tcp://" + address[len("dask://"):] if address.startswith("dask://") else address
    try:
        return distributed.Client(target, timeout=_CONNECT_TIMEOUT_S, set_as_default=False)
    except OSError as exc:
        raise XPError(f"cannot reach the Dask scheduler at {target}: {exc}") from None


class DaskCluster:
    def __init__(self, client: Any, body: str, namespace: dict[str, Any], experiment: str,
                 stored_names: list[str], max_output: int):
        self.client = client
        self._body = body
        self._experiment = experiment
        self._stored_names = stored_names
        self._max_output = max_output
        reads = cell_name_use(body, lambda text: text).loaded
        inputs = {name: namespace[name] for name in reads
                  if name in namespace and name not in _NOT_SENT and not name.startswith("_")
                  and is_recordable(namespace[name])}
        try:  # once per study, to every worker
            self._inputs = client.scatter(inputs, broadcast=True) if inputs else {}
        except Exception as exc:
            raise XPError(f"could not send the cell's data to the Dask workers: {type(exc).__name__}: {exc}") from None

    @classmethod
    def connect(cls, address: str, **kwargs: Any) -> DaskCluster:
        return cls(_client(address), **kwargs)

    @property
    def slots(self) -> int:
        """Trials that can run at once: the cluster's worker threads."""
        return max(1, sum(self.client.nthreads().values()))

    def evaluate(self, controller: Any, params: dict[str, Any]) -> Evaluation:
        future = self.client.submit(evaluate_remotely, self._body, self._inputs, params, self._experiment,
                                    self._stored_names, self._max_output, pure=False)
        return future.result()
