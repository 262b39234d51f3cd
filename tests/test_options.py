"""Every default lives once, in its config: the options generated from a config's fields give
back that config, the units of the command line convert, and the help shows the defaults."""

import click
import pytest
from click.testing import CliRunner

from denoiserlens.data import DataSpec
from denoiserlens.models import ArchChoice
from denoiserlens.quality import ClassifierConfig
from denoiserlens.represent import RepresentConfig
from denoiserlens.sampling.reconstruct import GuidanceConfig
from denoiserlens.settings import config_options
from denoiserlens.stages import DistanceConfig, ReconstructConfig, SampleConfig
from denoiserlens.stages.analysis import AnalyzeConfig
from denoiserlens.stages.evaluation import DenoiseConfig, EvaluateConfig
from denoiserlens.stages.geometry import GeneralizationConfig, JacobianConfig, SlopeConfig
from denoiserlens.stages.semantics import ClusterConfig, NeighboursConfig, ProbeConfig
from denoiserlens.train import TrainConfig

TRAIN_CLI_SKIP = ("eval_images", "eval_sigmas", "extra")  # as the train command


def parsed(cls, args=(), **kw):
    """The config a command built from ``cls``'s options receives for ``args``."""
    got = []

    @click.command()
    @config_options(cls, **kw)
    def command(cfg):
        got.append(cfg)

    r = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return got[0]


@pytest.mark.parametrize(
    "cls, args, expected",
    [
        (SampleConfig, [], SampleConfig()),
        (ReconstructConfig, [], ReconstructConfig()),
        (DistanceConfig, [], DistanceConfig()),
        (JacobianConfig, [], JacobianConfig()),
        (SlopeConfig, [], SlopeConfig()),
        (GeneralizationConfig, [], GeneralizationConfig()),
        (DenoiseConfig, ["--noisy"], DenoiseConfig(noisy=True)),
        (EvaluateConfig, [], EvaluateConfig()),
        (AnalyzeConfig, [], AnalyzeConfig()),
        (NeighboursConfig, [], NeighboursConfig()),
        (ClusterConfig, ["--k", "5"], ClusterConfig(k=5)),
        (ProbeConfig, [], ProbeConfig()),
        (RepresentConfig, [], RepresentConfig()),
        (ArchChoice, [], ArchChoice()),
        (DataSpec, ["--data", "disks:4:16"], DataSpec(("disks:4:16",))),
    ],
)
def test_the_options_of_a_config_give_back_its_defaults(cls, args, expected):
    assert parsed(cls, args) == expected


def test_train_and_classifier_options_give_back_their_defaults():
    assert parsed(TrainConfig, skip=TRAIN_CLI_SKIP) == TrainConfig()
    skip = ("widths", "features", "weight_decay")
    assert parsed(ClassifierConfig, skip=skip) == ClassifierConfig()


def test_noise_levels_are_given_of_255_and_kept_in_unit_range():
    cfg = parsed(TrainConfig, ["--sigma-max", "127.5", "--sigma-min", "24.5"], skip=TRAIN_CLI_SKIP)
    # divided by 255, bit for bit as before (24.5 * (1 / 255) is not): a run recorded with
    # the earlier command line resumes with the same settings
    assert cfg.sigma_max == 0.5 and cfg.sigma_min == 24.5 / 255
    rc = parsed(RepresentConfig, ["--sigmas", "16.5,51"])
    assert rc.sigmas == (16.5 / 255, 51 / 255)
    # a stage config in the command line's own units takes them as they are
    assert parsed(JacobianConfig, ["--sigmas", "5,50"]).sigmas == (5.0, 50.0)


def test_a_nested_config_takes_its_defaults_from_the_value_its_parent_holds():
    """Algorithm 2's settings: reconstruct's guidance caps at 20 steps, Eq. 4's at 10; an lr
    left unset is the matcher's own (adam 0.01, descent 1.0), not the other matcher's."""
    assert parsed(ReconstructConfig).guidance.max_iter == 20
    assert parsed(DistanceConfig).guidance == GuidanceConfig(max_iter=10, tol=0.05)
    descent = parsed(ReconstructConfig, ["--matcher", "descent", "--max-iter", "3"]).guidance
    assert (descent.matcher, descent.lr, descent.max_iter) == ("descent", 1.0, 3)


def test_lists_and_pairs_parse_and_bad_ones_are_one_line():
    cfg = parsed(ReconstructConfig, ["--union", "1+2,3+4", "--rows", "5,6"])
    assert cfg.unions == ((1, 2), (3, 4)) and cfg.rows == (5, 6)

    @click.command()
    @config_options(ReconstructConfig)
    def command(cfg):
        pass

    for bad in (["--union", "1+2+3"], ["--rows", "a,b"], ["--n-samples", "0"]):
        r = CliRunner().invoke(command, bad)
        assert r.exit_code == 2 and "Invalid value" in r.output, r.output


def test_the_help_shows_the_configs_defaults():
    from denoiserlens.cli import main

    r = CliRunner().invoke(main, ["train", "--help"], terminal_width=200)
    assert "[default: 10000; x>=1]" in r.output  # TrainConfig.steps
    assert "[default: 255.0]" in r.output  # TrainConfig.sigma_max = 1.0, shown of 255
    r = CliRunner().invoke(main, ["distance", "--help"], terminal_width=200)
    assert "Guidance (Algorithm 2) steps at most, per noise level.  [default: 10" in r.output
