import ssl

from inferq.celery_app import make_celery
from inferq.messages import TASK_NAME
from inferq.settings import Settings


def test_json_only_late_acks_and_the_queue_from_settings():
    conf = make_celery(Settings(queue_name="digits", visibility_timeout_s=60, max_batch_size=32)).conf
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert conf.result_accept_content == ["json"] and conf.result_serializer == "json"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    # The task's default route is the default model's interactive queue; the API pushes to any model's.
    assert conf.task_routes[TASK_NAME] == {"queue": "digits.mnist"}
    assert conf.task_default_queue == "digits.mnist"
    assert conf.task_queues is None
    assert conf.broker_transport_options["visibility_timeout"] == 60
    assert conf.broker_transport_options["unacked_restore_interval"] == 10
    assert conf.worker_prefetch_multiplier == 64


def test_a_rediss_url_verifies_certificates_unless_told_otherwise():
    conf = make_celery(Settings(redis_url="rediss://:pw@host:6380/0?ssl_ca_certs=/ca.pem")).conf
    assert conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}
    assert conf.redis_backend_use_ssl == conf.broker_use_ssl
    relaxed = make_celery(Settings(redis_url="rediss://host/0?ssl_cert_reqs=CERT_NONE")).conf
    assert relaxed.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert make_celery(Settings(redis_url="redis://host/0")).conf.broker_use_ssl is None


def test_the_result_backend_accepts_a_rediss_url():
    backend = make_celery(Settings(redis_url="rediss://:pw@host:6380/0")).backend
    assert backend.connparams["ssl_cert_reqs"] == ssl.CERT_REQUIRED


def test_a_sentinel_url_takes_the_sentinel_transport_and_names_the_master():
    app = make_celery(Settings(redis_url="sentinel://a:26379;sentinel://b:26379", redis_sentinel_master="queue"))
    assert app.conf.broker_transport == "inferq.broker:SentinelTransport"
    assert app.conf.broker_transport_options["master_name"] == "queue"
    assert app.conf.broker_transport_options["sentinel_kwargs"]["retry"].get_retries() == 0
    assert app.connection_for_write().alt == ["sentinel://a:26379", "sentinel://b:26379"]
    assert app.backend.__class__.__name__ == "SentinelBackend"
    assert make_celery(Settings(redis_url="redis://host/0")).conf.broker_transport == "inferq.broker:Transport"


def test_a_worker_consumes_the_queues_it_is_given_in_their_order():
    queues = ["inferq.mnist", "inferq.resnet", "inferq.mnist.bulk", "inferq.resnet.bulk"]
    conf = make_celery(Settings(default_model="resnet"), queues=queues).conf
    assert [queue.name for queue in conf.task_queues] == queues
    assert conf.task_routes[TASK_NAME] == {"queue": "inferq.resnet"}
