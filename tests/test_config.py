"""--config files: round trip, precedence (command line wins), and one clear error per bad key."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from ldf_vfi.cli import add_interpolate_arguments
from ldf_vfi.commands import command_parser
from ldf_vfi.config import (
    config_dataclass,
    effective_config,
    load_config,
    parse_args_with_config,
    save_effective_config,
)
from ldf_vfi.errors import InputError
from ldf_vfi.io import probe

from conftest import REPO_ROOT


def parser():
    return command_parser("generate.py", add_interpolate_arguments)


def write(path, data):
    path.write_text(yaml.safe_dump(data) if path.suffix != ".json" else json.dumps(data))
    return path


def test_file_sets_flags_and_the_command_line_overrides(tmp_path, small_video):
    config = write(
        tmp_path / "run.yaml",
        {"data": str(small_video), "temporal_sf": 3, "sampling_steps": 8, "no_audio": True},
    )
    args = parse_args_with_config(parser(), ["--config", str(config), "--temporal_sf", "5"])
    assert (args.data, args.temporal_sf, args.sampling_steps, args.no_audio) == (str(small_video), 5, 8, True)
    assert parse_args_with_config(parser(), ["--config", str(config)]).temporal_sf == 3
    # not given: validate_interpolate_args makes it 4 unless --target_fps sets the rate instead
    assert parse_args_with_config(parser(), ["--data", str(small_video)]).temporal_sf is None


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_file_dataclass_file(tmp_path, small_video, suffix):
    config = write(
        tmp_path / f"run{suffix}", {"data": str(small_video), "temporal_sf": 6, "target_fps": "60000/1001"}
    )
    loaded = load_config(parser(), config, "GenerateConfig")
    assert type(loaded).__name__ == "GenerateConfig" and loaded.temporal_sf == 6 and loaded.t_shift == 8.0
    saved = save_effective_config(loaded, tmp_path / f"again{suffix}")
    again = load_config(parser(), saved)
    assert effective_config(again) == effective_config(loaded)
    assert {f for f in config_dataclass(parser()).__dataclass_fields__} >= {
        "data",
        "temporal_sf",
        "tile_min_h",
        "sp_size",
    }


@pytest.mark.parametrize(
    "content, message",
    [
        (
            {"temporal_sfx": 4},
            "unknown key 'temporal_sfx' in config file '.*bad.yaml' \\(did you mean 'temporal_sf'\\?\\)",
        ),
        ({"tile_min_h": "big"}, "'tile_min_h' in config file '.*bad.yaml' is not a valid int"),
        ({"tile_min_h": 2.5}, "'tile_min_h' .* must be an integer"),
        ({"save_lq": "yes"}, "'save_lq' .* must be true or false"),
        ({"backend": "rife"}, "'backend' .* must be one of auto, flow, ldf"),
        (
            {"data": "/no/such/video.mp4"},
            "'data' in config file '.*bad.yaml': not found: '/no/such/video.mp4'",
        ),
        ({"vae_path": "/no/such.pth"}, "'vae_path' .* not found"),
        ({"fps": -2}, "'fps' .* must be positive"),
        ({"temporal_sf": [1, 2]}, "'temporal_sf' .* must be a single value"),
    ],
)
def test_each_bad_key_is_one_clear_error(tmp_path, content, message):
    config = write(tmp_path / "bad.yaml", content)
    with pytest.raises(InputError, match=message):
        parse_args_with_config(
            parser(), ["--config", str(config), "--data", str(REPO_ROOT / "assets" / "demo.mp4")]
        )


def test_unreadable_config_files(tmp_path):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "broken.json").write_text("{not json")
    for name, message in (
        ("list.yaml", "must hold a mapping"),
        ("broken.json", "cannot parse"),
        ("absent.yaml", "not found"),
    ):
        with pytest.raises(InputError, match=message):
            parse_args_with_config(parser(), ["--config", str(tmp_path / name)])


def test_generate_with_a_config_file_and_its_saved_config_repeats_the_run(tmp_path, small_video):
    config = write(
        tmp_path / "run.yaml", {"data": str(small_video), "temporal_sf": 2, "output_dir": str(tmp_path / "a")}
    )
    run = [sys.executable, str(REPO_ROOT / "generate.py"), "--config"]
    first = subprocess.run([*run, str(config)], capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    saved = tmp_path / "a" / "small" / "generate_config.yaml"
    assert yaml.safe_load(saved.read_text())["temporal_sf"] == 2
    again = subprocess.run(
        [*run, str(saved), "--output_dir", str(tmp_path / "b")], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert (
        probe(tmp_path / "b" / "small" / "pred.mp4").num_frames
        == probe(tmp_path / "a" / "small" / "pred.mp4").num_frames
        == 17
    )
    bad = write(tmp_path / "bad.yaml", {"data": str(small_video), "temporal_sf": 2, "sampling_step": 3})
    result = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: unknown key 'sampling_step' in config file '{bad}' (did you mean 'sampling_steps'?)"
    ]
