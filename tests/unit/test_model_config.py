"""A model's config.json (and labels.txt): every key checked, with a message naming the file and the key."""

import json

import pytest

from inferq import model_config
from inferq.model_config import ConfigError, ImageConfig, ModelConfig, VersionPolicy, config_from_json


def write(model_dir, config=None, *, labels: str | bytes | None = None):
    model_dir.mkdir(parents=True, exist_ok=True)
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (model_dir / "config.json").write_text(text)
    if labels is not None:
        path = model_dir / "labels.txt"
        path.write_bytes(labels) if isinstance(labels, bytes) else path.write_text(labels)
    return model_dir


def test_a_model_without_a_config_gets_the_defaults(tmp_path):
    config = model_config.load(tmp_path / "mnist")
    assert config == ModelConfig()
    assert (config.max_batch_size, config.max_batch_wait_ms, config.labels, config.image) == (None, None, None, None)
    assert config.signature == "serving_default"
    assert config.version_policy == VersionPolicy(latest=1)


def test_every_key_is_read(tmp_path):
    config = model_config.load(write(tmp_path / "m", {
        "max_batch_size": 16, "max_batch_wait_ms": 2.5, "signature": "predict",
        "version_policy": {"specific": [3, 1, 3]}, "labels": ["cat", "dog"],
        "image": {"preprocessing": "standard", "channels": 3, "scale": "-1..1", "invert": True, "resize": "crop"},
    }))
    assert config == ModelConfig(
        max_batch_size=16, max_batch_wait_ms=2.5, signature="predict",
        version_policy=VersionPolicy(latest=None, specific=(1, 3)), labels=("cat", "dog"),
        image=ImageConfig(preprocessing="standard", channels=3, scale="-1..1", invert=True, resize="crop"))


def test_keys_set_to_null_keep_their_defaults(tmp_path):
    keys = ("max_batch_size", "max_batch_wait_ms", "signature", "version_policy", "labels", "image")
    assert model_config.load(write(tmp_path / "m", dict.fromkeys(keys))) == ModelConfig()


def test_a_wait_of_zero_and_a_whole_number_of_milliseconds_are_taken(tmp_path):
    assert model_config.load(write(tmp_path / "a", {"max_batch_wait_ms": 0})).max_batch_wait_ms == 0
    assert model_config.load(write(tmp_path / "b", {"max_batch_wait_ms": 10})).max_batch_wait_ms == 10


def test_image_keys_left_out_take_their_defaults(tmp_path):
    assert model_config.load(write(tmp_path / "m", {"image": {"preprocessing": "mnist"}})).image == \
        ImageConfig(preprocessing="mnist", channels=None, scale="0..255", invert=False, resize="stretch")


@pytest.mark.parametrize(("config", "names"), [
    ([1, 2], "must be a JSON object"),
    ('"just text"', "must be a JSON object"),
    ({"max_batch": 8}, "unknown key 'max_batch'"),
    ({"max_batch_size": 0}, "'max_batch_size' must be a positive integer"),
    ({"max_batch_size": -3}, "'max_batch_size' must be a positive integer"),
    ({"max_batch_size": 8.5}, "'max_batch_size' must be a positive integer"),
    ({"max_batch_size": 8.0}, "'max_batch_size' must be a positive integer"),
    ({"max_batch_size": True}, "'max_batch_size' must be a positive integer"),
    ({"max_batch_size": "8"}, "'max_batch_size' must be a positive integer"),
    ({"max_batch_wait_ms": -1}, "'max_batch_wait_ms' must be a number of milliseconds"),
    ({"max_batch_wait_ms": False}, "'max_batch_wait_ms' must be a number of milliseconds"),
    ({"max_batch_wait_ms": "5"}, "'max_batch_wait_ms' must be a number of milliseconds"),
    ({"max_batch_wait_ms": float("inf")}, "'max_batch_wait_ms' must be a number of milliseconds"),
    ({"max_batch_wait_ms": float("nan")}, "'max_batch_wait_ms' must be a number of milliseconds"),
    ({"signature": ""}, "'signature' must be a signature's name"),
    ({"signature": 3}, "'signature' must be a signature's name"),
    ({"version_policy": "latest"}, "'version_policy' must be"),
    ({"version_policy": {}}, "'version_policy' must be"),
    ({"version_policy": {"newest": 1}}, "'version_policy' must be"),
    ({"version_policy": {"latest": 1, "specific": [1]}}, "'version_policy' must be"),
    ({"version_policy": {"latest": 0}}, "'version_policy': 'latest' must be a positive integer"),
    ({"version_policy": {"latest": True}}, "'version_policy': 'latest' must be a positive integer"),
    ({"version_policy": {"latest": 1.5}}, "'version_policy': 'latest' must be a positive integer"),
    ({"version_policy": {"specific": []}}, "'version_policy': 'specific' must be a list of version numbers"),
    ({"version_policy": {"specific": 3}}, "'version_policy': 'specific' must be a list of version numbers"),
    ({"version_policy": {"specific": [-1]}}, "'version_policy': 'specific' must be a list of version numbers"),
    ({"version_policy": {"specific": [True]}}, "'version_policy': 'specific' must be a list of version numbers"),
    ({"version_policy": {"specific": ["2"]}}, "'version_policy': 'specific' must be a list of version numbers"),
    ({"labels": []}, "'labels' must be a list of class names"),
    ({"labels": "cat,dog"}, "'labels' must be a list of class names"),
    ({"labels": ["cat", 2]}, "'labels' must be a list of class names"),
    ({"image": "standard"}, "'image' must be an object"),
    ({"image": {"colour": 3}}, "'image': unknown key 'colour'"),
    ({"image": {"preprocessing": "imagenet"}}, "'image': 'preprocessing' must be one of 'standard', 'mnist'"),
    ({"image": {"scale": "0..100"}}, "'image': 'scale' must be one of '0..255', '0..1', '-1..1'"),
    ({"image": {"resize": "pad"}}, "'image': 'resize' must be one of 'stretch', 'fit', 'crop'"),
    ({"image": {"channels": 2}}, "'image': 'channels' must be 1 or 3"),
    ({"image": {"channels": True}}, "'image': 'channels' must be 1 or 3"),
    ({"image": {"channels": 3.0}}, "'image': 'channels' must be 1 or 3"),
    ({"image": {"channels": "3"}}, "'image': 'channels' must be 1 or 3"),
    ({"image": {"invert": "yes"}}, "'image': 'invert' must be true or false"),
    ({"image": {"invert": 1}}, "'image': 'invert' must be true or false"),
])
def test_a_bad_value_is_refused_naming_the_file_and_the_key(tmp_path, config, names):
    model_dir = write(tmp_path / "m", config)
    with pytest.raises(ConfigError) as refused:
        model_config.load(model_dir)
    assert str(refused.value).startswith(f"{model_dir / 'config.json'}: ")
    assert names in str(refused.value)


def test_an_unknown_key_is_refused_with_the_keys_there_are(tmp_path):
    with pytest.raises(ConfigError, match="known: max_batch_size, max_batch_wait_ms, signature, version_policy, "
                                          "labels, image"):
        model_config.load(write(tmp_path / "m", {"batch": 1}))


@pytest.mark.parametrize("text", ["{", "", "{'single': 'quotes'}"])
def test_a_config_that_is_not_json_is_refused_naming_the_file(tmp_path, text):
    model_dir = write(tmp_path / "m", text)
    with pytest.raises(ConfigError, match=r"config\.json: not readable JSON"):
        model_config.load(model_dir)


def test_a_config_that_is_not_utf8_is_refused(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "config.json").write_bytes(b'{"signature": "\xff"}')
    with pytest.raises(ConfigError, match="not readable JSON"):
        model_config.load(model_dir)


def test_labels_come_from_labels_txt_one_a_line_blank_lines_and_spaces_dropped(tmp_path):
    model_dir = write(tmp_path / "m", labels="  cat \n\ndog\r\nsea lion\n\n")
    assert model_config.load(model_dir).labels == ("cat", "dog", "sea lion")


def test_labels_txt_goes_with_a_config_that_has_no_labels(tmp_path):
    config = model_config.load(write(tmp_path / "m", {"max_batch_size": 4}, labels="a\nb\n"))
    assert (config.max_batch_size, config.labels) == (4, ("a", "b"))


def test_labels_in_config_json_win_over_labels_txt(tmp_path):
    assert model_config.load(write(tmp_path / "m", {"labels": ["x"]}, labels="a\nb\n")).labels == ("x",)


@pytest.mark.parametrize(("labels", "message"), [("\n \n", "no class names in it"), (b"caf\xe9\n", "not readable")])
def test_a_labels_txt_without_names_or_not_utf8_is_refused_naming_it(tmp_path, labels, message):
    model_dir = write(tmp_path / "m", labels=labels)
    with pytest.raises(ConfigError) as refused:
        model_config.load(model_dir)
    assert str(refused.value).startswith(f"{model_dir / 'labels.txt'}: ") and message in str(refused.value)


@pytest.mark.parametrize(("policy", "present", "served"), [
    (VersionPolicy(), [1, 2, 3], [3]),
    (VersionPolicy(), [10, 9, 2], [10]),  # numbers, not names: 10 is newer than 9
    (VersionPolicy(latest=2), [3, 1, 2], [2, 3]),
    (VersionPolicy(latest=5), [2, 1], [1, 2]),
    (VersionPolicy(latest=2), [], []),
    (VersionPolicy(latest=None, specific=(1, 3)), [1, 2, 3, 4], [1, 3]),
    (VersionPolicy(latest=None, specific=(1, 3)), [3, 4], [3]),  # those of them present
    (VersionPolicy(latest=None, specific=(7,)), [1, 2], []),
])
def test_the_version_policy_selects_as_tf_serving_does(policy, present, served):
    assert policy.select(present) == served


def test_a_config_travels_in_heartbeats_and_comes_back_the_same():
    for config in (ModelConfig(),
                   ModelConfig(max_batch_size=8, max_batch_wait_ms=0.5, signature="predict",
                               version_policy=VersionPolicy(latest=3), labels=("a", "b"),
                               image=ImageConfig(channels=1, invert=True)),
                   ModelConfig(version_policy=VersionPolicy(latest=None, specific=(2, 5)),
                               image=ImageConfig(preprocessing="mnist"))):
        assert config_from_json(json.loads(json.dumps(config.to_json()))) == config
    assert config_from_json(None) == config_from_json({}) == ModelConfig()


def test_a_models_batch_limits_are_its_own_where_it_says_else_the_deployments():
    assert ModelConfig().batch_size_or(64) == 64 and ModelConfig().batch_wait_ms_or(5.0) == 5.0
    own = ModelConfig(max_batch_size=8, max_batch_wait_ms=0)
    assert own.batch_size_or(64) == 8
    assert own.batch_wait_ms_or(5.0) == 0, "a wait of 0 is the model's own, not 'unset'"
