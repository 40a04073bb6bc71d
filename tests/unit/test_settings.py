import pytest

from inferq.settings import Settings, SettingsError


def test_defaults_without_environment():
    settings = Settings.from_env({})
    assert settings.port == 8080
    assert settings.max_batch_size == 64
    assert settings.api_key is None
    assert settings.model_repository == "models" and settings.model_dir is None
    assert settings.repository_root == "models"
    assert settings.default_model == "mnist" and settings.model_name == "mnist"
    assert settings.served_models is None


def test_model_dir_where_set_is_served_instead_of_the_repository():
    settings = Settings.from_env({"MODEL_DIR": "/old/mnist", "MODEL_REPOSITORY": "/repo"})
    assert settings.repository_root == "/old/mnist"
    assert Settings.from_env({"MODEL_REPOSITORY": "/repo"}).repository_root == "/repo"


def test_worker_models_is_a_comma_separated_list_and_blank_means_every_model():
    assert Settings.from_env({"WORKER_MODELS": " resnet, mnist ,"}).served_models == {"resnet", "mnist"}
    assert Settings.from_env({"WORKER_MODELS": "mnist"}).served_models == {"mnist"}
    assert Settings.from_env({"WORKER_MODELS": ""}).served_models is None
    assert Settings(worker_models=" , ").served_models is None


def test_each_model_has_its_queues_under_queue_name():
    assert Settings(queue_name="digits").model_queue("resnet") == "digits.resnet"


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
    ("DEFAULT_MODEL", "bulk", "DEFAULT_MODEL: 'bulk' is not a model name: letters, digits, '_' and '-', up to 64, "
                              "and not 'interactive' or 'bulk'"),
    ("MODEL_NAME", "a/b", "MODEL_NAME: 'a/b' is not a model name: letters, digits, '_' and '-', up to 64, "
                          "and not 'interactive' or 'bulk'"),
    ("WORKER_MODELS", "mnist,my model", "WORKER_MODELS: 'my model' is not a model name: letters, digits, '_' and "
                                        "'-', up to 64, and not 'interactive' or 'bulk'"),
])
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value) == message


def test_images_per_request_must_fit_in_the_queue():
    with pytest.raises(SettingsError, match="MAX_IMAGES_PER_REQUEST"):
        Settings.from_env({"MAX_IMAGES_PER_REQUEST": "100", "MAX_QUEUE_DEPTH": "10"})


@pytest.mark.parametrize("given", [{"GRPC_TLS_CERT_FILE": "cert.pem"}, {"GRPC_TLS_KEY_FILE": "key.pem"}])
def test_the_grpc_certificate_and_key_go_together(given):
    with pytest.raises(SettingsError, match="GRPC_TLS_CERT_FILE and GRPC_TLS_KEY_FILE go together"):
        Settings.from_env(given)
    both = Settings.from_env({"GRPC_TLS_CERT_FILE": "cert.pem", "GRPC_TLS_KEY_FILE": "key.pem"})
    assert (both.grpc_tls_cert_file, both.grpc_tls_key_file) == ("cert.pem", "key.pem")


def test_grpc_processes_and_threads_are_positive():
    for name in ("GRPC_PORT", "GRPC_PROCESSES", "GRPC_THREADS"):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: "0"})
