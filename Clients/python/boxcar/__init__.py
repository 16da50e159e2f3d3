"""Boxcar's Python SDK: log experiments, metrics, events and artifacts into a Boxcar agent.

    from boxcar import Boxcar, MLFramework, Event, EventSource

    mbox = Boxcar()
    experiment = mbox.new_experiment(name="yolo-v4", namespace="cv", framework=MLFramework.PYTORCH)
    experiment.log_metrics({"loss": 2.4}, step=10)

Logging never waits for the agent: a background thread ships batches over ``boxcar.v1.Agent/Log``.
The generated gRPC stubs live in ``boxcar._proto``.
"""

from ._channel import default_target
from ._client import Boxcar, experiment_id
from ._errors import BoxcarError
from ._experiment import Experiment
from ._types import (
    Artifact,
    Event,
    EventSource,
    ExperimentInfo,
    FileType,
    MetadataUpdate,
    MetricValue,
    MLFramework,
)

__all__ = [
    "Artifact",
    "Boxcar",
    "BoxcarError",
    "Event",
    "EventSource",
    "Experiment",
    "ExperimentInfo",
    "FileType",
    "MLFramework",
    "MetadataUpdate",
    "MetricValue",
    "default_target",
    "experiment_id",
]
__version__ = "0.1.0"
