"""Quality of generated images without a download: a small classifier trained here, the Frechet
distance in its features, class agreement of reconstructions, pixel statistics (issue 19)."""

from denoiserlens.quality.classifier import (
    BUNDLED_CLASSIFIER,
    READ_TRANSFORMS,
    Classifier,
    ClassifierConfig,
    ImageClassifier,
    fitting_classifier,
    images_as_float,
    load_classifier,
    open_reference,
    save_classifier,
    train_classifier,
)
from denoiserlens.quality.measures import (
    PixelStats,
    ReconstructionQuality,
    SampleQuality,
    check_reference,
    frechet_distance,
    frechet_from_moments,
    histogram_distance,
    pixel_stats,
    reconstruction_quality,
    sample_quality,
    shrinkage_slopes,
)

__all__ = [
    "BUNDLED_CLASSIFIER",
    "Classifier",
    "ClassifierConfig",
    "ImageClassifier",
    "PixelStats",
    "READ_TRANSFORMS",
    "ReconstructionQuality",
    "SampleQuality",
    "check_reference",
    "frechet_distance",
    "frechet_from_moments",
    "histogram_distance",
    "fitting_classifier",
    "images_as_float",
    "load_classifier",
    "open_reference",
    "pixel_stats",
    "reconstruction_quality",
    "sample_quality",
    "save_classifier",
    "shrinkage_slopes",
    "train_classifier",
]
