import pytest

from inferq.settings import Settings, SettingsError


def test_defaults_without_environment():
    settings = Settings.from_env({})
    assert settings.port == 8080
    assert settings.max_batch_size == 64
    assert settings.api_key is None
    assert settings.model_dir == "models"


def test_environment_variables_are_upper_case_field_names():
    settings = Settings.from_env({"PORT": "9000", "MAX_BATCH_WAIT_MS": "2.5", "API_KEY": "s3cret",
                                  "REDIS_URL": "rediss://:pw@host:6380/2"})
    assert settings.port == 9000
    assert settings.max_batch_wait_ms == 2.5
    assert settings.api_key == "s3cret"
    assert settings.redis_url == "rediss://:pw@host:6380/2"


def test_empty_variable_keeps_the_default():
    assert Settings.from_env({"PORT": "", "API_KEY": ""}).port == 8080
    assert Settings.from_env({"API_KEY": ""}).api_key is None


def test_overrides_win_over_the_environment():
    assert Settings.from_env({"PORT": "9000"}, port=9100).port == 9100


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PORT", "eighty", "PORT must be an integer, got 'eighty'"),
    ("MAX_BATCH_WAIT_MS", "soon", "MAX_BATCH_WAIT_MS must be a number, got 'soon'"),
    ("MAX_BATCH_SIZE", "0", "MAX_BATCH_SIZE must be positive, got 0"),
    ("MAX_BATCH_WAIT_MS", "-1", "MAX_BATCH_WAIT_MS must not be negative, got -1.0"),
    ("API_SERVER", "uwsgi", "API_SERVER must be one of gunicorn, granian, got 'uwsgi'"),
    ("API_WORKER_CLASS", "sync", "API_WORKER_CLASS must be one of gevent, gthread, got 'sync'"),
    ("REDIS_MIN_REPLICAS_ACKED", "-1", "REDIS_MIN_REPLICAS_ACKED must not be negative, got -1"),
    ("REDIS_REPLICA_ACK_TIMEOUT_MS", "0", "REDIS_REPLICA_ACK_TIMEOUT_MS must be positive, got 0"),
])
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == message


def test_images_per_request_must_fit_in_the_queue():
    with pytest.raises(SettingsError, match="MAX_IMAGES_PER_REQUEST"):
        Settings.from_env({"MAX_IMAGES_PER_REQUEST": "100", "MAX_QUEUE_DEPTH": "10"})
