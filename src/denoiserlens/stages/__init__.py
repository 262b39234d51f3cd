"""The pipeline's experiments as library functions: each takes a frozen config (every default
once, in its fields) and returns a result that can save itself. The command line
(``denoiserlens.cli``) and the report call these same functions."""

from denoiserlens.stages.sampling import (
    DistanceConfig,
    DistanceResult,
    ReconstructConfig,
    ReconstructResult,
    SampleConfig,
    SampleResult,
    run_distance,
    run_reconstruct,
    run_sample,
)

__all__ = [
    "DistanceConfig",
    "DistanceResult",
    "ReconstructConfig",
    "ReconstructResult",
    "SampleConfig",
    "SampleResult",
    "run_distance",
    "run_reconstruct",
    "run_sample",
]
