"""swiftchat-api: a drop-in server for the SwiftChat apps, in front of Amazon Bedrock."""

import logging
from dataclasses import dataclass

log = logging.getLogger("swiftchat_api")


@dataclass
class Resources:
    """What every request shares: settings, the API key source and the boto3 clients."""

    config: object
    keys: object
    clients: object
    ticker: object
    models_cache: object
    releases_cache: object
    http: object


def create_app(config=None):
    """Build the Flask app: config → clients → key source → blueprints → error handlers."""
    # Imported here so that gunicorn's gevent worker has patched sockets before boto3 loads.
    import urllib3
    from flask import Flask, request

    from . import errors, logs
    from .auth import ParameterStoreKey, StaticKey
    from .aws import Clients
    from .blueprints import converse, image, models, ops, token, upgrade
    from .cache import TTLCache
    from .config import Config
    from .observe import UNMATCHED, Observer
    from .relay import Ticker

    config = config or Config.from_env()
    app = Flask(__name__)
    app.json.sort_keys = False  # answer in the order the apps' original server used
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    clients = Clients(config)
    clients.warm()
    if config.api_key_name:
        keys = ParameterStoreKey(lambda: clients.get("ssm"), config.api_key_name)
    else:
        keys = StaticKey(config.api_key)
    ticker = Ticker(period=min(1.0, config.keepalive_seconds / 2))
    app.extensions["swiftchat"] = Resources(
        config,
        keys,
        clients,
        ticker,
        models_cache=TTLCache(config.models_cache_seconds),
        releases_cache=TTLCache(config.upgrade_cache_seconds),
        http=urllib3.PoolManager(num_pools=4, maxsize=8),
    )
    for module in (converse, image, models, upgrade, token, ops):
        app.register_blueprint(module.bp)
    app.register_blueprint(ops.docs)
    errors.register(app)

    @app.before_request
    def _name_the_route():
        request.environ["swiftchat.route"] = request.url_rule.rule if request.url_rule else UNMATCHED

    app.wsgi_app = Observer(app.wsgi_app)
    logs.configure()
    if config.emulator:
        log.warning("SERVING FROM THE BUILT-IN BEDROCK EMULATOR: answers are canned, not from Amazon Bedrock.")
    return app
