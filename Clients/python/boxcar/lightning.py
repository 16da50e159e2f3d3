"""A PyTorch Lightning logger that records into Boxcar.

    from boxcar.lightning import BoxcarLogger
    trainer = Trainer(logger=BoxcarLogger(name="yolo-v4", namespace="cv"))

Hyperparameters become experiment metadata, logged metrics become metrics (at Lightning's step),
and each saved checkpoint becomes a ``checkpoint_saved`` event and a tracked artifact. This module
imports without Lightning; making a logger without it raises ImportError saying what to install.
"""

from __future__ import annotations

import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

from ._client import Boxcar
from ._experiment import Experiment
from ._types import Event, EventSource, MLFramework


def _logger_base() -> type:
    for module in ("lightning.pytorch.loggers", "pytorch_lightning.loggers"):
        try:
            return __import__(module, fromlist=["Logger"]).Logger
        except ImportError:
            continue
    return object


_Base = _logger_base()


def _flatten(params: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "/"))
        elif isinstance(value, (str, int, float, bool)) or value is None:
            out[name] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(item, (str, int, float, bool)) for item in value):
            out[name] = list(value)
        else:
            out[name] = str(value)  # a class, a function, a tensor: as Lightning's loggers print them
    return out


class BoxcarLogger(_Base):  # type: ignore[misc, valid-type]
    """Lightning's Logger interface over a Boxcar experiment (made on first use)."""

    def __init__(
        self,
        name: str = "lightning",
        namespace: str = "",
        owner: str = "",
        target: Optional[str] = None,
        client: Optional[Boxcar] = None,
        **client_options: Any,
    ):
        if _Base is object:
            raise ImportError(
                "boxcar.lightning.BoxcarLogger needs PyTorch Lightning: pip install lightning "
                "(or pytorch-lightning)")
        super().__init__()
        self._name = name
        self._namespace = namespace
        self._owner = owner
        self._client = client or Boxcar(target, **client_options)
        self._experiment: Optional[Experiment] = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self.experiment.id

    @property
    def experiment(self) -> Experiment:
        if self._experiment is None:
            self._experiment = self._client.new_experiment(
                name=self._name, namespace=self._namespace, owner=self._owner, framework=MLFramework.PYTORCH)
        return self._experiment

    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace], *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        for key, value in _flatten(dict(params)).items():
            self.experiment.update_metadata(key, value)

    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        self.experiment.log_metrics(dict(metrics), step=int(step or 0))

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        path = getattr(checkpoint_callback, "last_model_path", "") or getattr(checkpoint_callback, "best_model_path", "")
        if not path:
            return
        metadata: Dict[str, Any] = {"path": str(path)}
        score = getattr(checkpoint_callback, "best_model_score", None)
        if score is not None:
            try:
                metadata["best_model_score"] = float(score)
            except (TypeError, ValueError):
                pass
        self.experiment.log_event(Event(name="checkpoint_saved", source=EventSource(name="lightning"), metadata=metadata))
        if os.path.exists(path):
            self.experiment.track_artifacts([str(path)])

    def save(self) -> None:
        self._client.flush(self._client.timeout)

    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self.experiment.log_event(Event(name="training_finished", source=EventSource(name="lightning"),
                                            metadata={"status": status}))
            self._experiment.finish()
