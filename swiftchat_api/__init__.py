"""swiftchat-api: a drop-in server for the SwiftChat apps, in front of Amazon Bedrock."""

import logging
from dataclasses import dataclass

log = logging.getLogger("swiftchat_api")

# What a browser's script may read of a /v1 answer besides the simple headers: the SDKs' retry hints.
CORS_EXPOSED = ["Retry-After", "x-should-retry", "X-Request-ID", "x-swiftchat-adapted"]
CORS_MAX_AGE = 600  # seconds a browser may reuse a preflight's answer


@dataclass
class Resources:
    """What every request shares: settings, the API key source and the boto3 clients."""

    config: object
    keys: object
    clients: object
    ticker: object
    relay_limits: object
    models_cache: object
    releases_cache: object
    http: object
    store: object = None
    usage: object = None  # the store's UsageRecorder: usage written without holding a response
    counter: object = None  # Bedrock's CountTokens for cut streams (services.counting.TokenCounter)
    responses: object = None  # stored /v1/responses (oai.responses_store.ResponsesStore), in the same store


def create_app(config=None):
    """Build the Flask app: config → clients → key source → blueprints → error handlers."""
    # Imported here so that gunicorn's gevent worker has patched sockets before boto3 loads.
    import os

    import gevent
    import urllib3
    from flask import Flask, request
    from flask_cors import CORS

    from . import cli, errors, logs
    from .auth import PARAMETER_STORE, ParameterStoreKey, StaticKey, usage_lost
    from .aws import Clients
    from .blueprints import converse, image, models, ops, proxy, token, upgrade, v1
    from .cache import TTLCache
    from .config import Config
    from .oai.responses_store import ResponsesStore
    from .observe import FACTS, Observer
    from .relay import Limits, Ticker
    from .services.counting import TokenCounter
    from .store import open_store
    from .store.recorder import UsageRecorder

    in_cli = bool(os.environ.get("FLASK_RUN_FROM_CLI"))  # `flask keys ...`: the store, not AWS or a key source
    config = config or Config.from_env(key_source_required=not in_cli)
    # gevent would otherwise record who spawned every greenlet (a stack capture per stream).
    gevent.config.track_greenlet_tree = False
    app = Flask(__name__)
    app.json.sort_keys = False  # answer in the order the apps' original server used
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    clients = Clients(config)
    if not in_cli:
        clients.warm()
    if config.api_key_name:
        keys = ParameterStoreKey(
            lambda: clients.get("ssm", config=PARAMETER_STORE),
            config.api_key_name,
            refresh_interval=config.key_refresh_seconds,
            failure_ttl=config.key_refresh_seconds,
        )
    else:
        keys = StaticKey(config.api_key)
    ticker = Ticker(period=min(1.0, config.keepalive_seconds / 2))
    store = open_store(config.store_url, pepper=config.key_pepper, timeout=config.store_timeout)
    app.extensions["swiftchat"] = Resources(
        config,
        keys,
        clients,
        ticker,
        relay_limits=Limits(
            idle_timeout=config.bedrock_read_timeout,
            keepalive_interval=config.keepalive_seconds,
        ),
        models_cache=TTLCache(config.models_cache_seconds),
        releases_cache=TTLCache(config.upgrade_cache_seconds),
        http=urllib3.PoolManager(num_pools=4, maxsize=8),
        store=store,
        usage=UsageRecorder(store, failed=usage_lost, spill=getattr(store, "path", None)),
        counter=TokenCounter(clients),  # after the recorder: its exit hands the recorder what it still counts
        responses=ResponsesStore(store, config),
    )
    for module in (converse, image, models, upgrade, token, proxy, ops, v1):
        app.register_blueprint(module.bp)
    app.register_blueprint(ops.docs)
    errors.register(app)
    app.cli.add_command(cli.keys)
    if config.cors_origins:  # browsers may call the OpenAI API only; the apps' routes have no browser clients
        origins = "*" if config.cors_origins == ("*",) else list(config.cors_origins)
        CORS(app, resources={r"/v1/*": {"origins": origins}}, expose_headers=CORS_EXPOSED, max_age=CORS_MAX_AGE)

    @app.before_request
    def _name_the_route():
        if request.url_rule:
            request.environ[FACTS].route = request.url_rule.rule

    app.wsgi_app = Observer(app.wsgi_app)
    logs.configure()
    if config.emulator:
        log.warning("SERVING FROM THE BUILT-IN BEDROCK EMULATOR: answers are canned, not from Amazon Bedrock.")
    return app
