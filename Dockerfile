# swiftchat-api: gunicorn with gevent workers. Build: docker build -t swiftchat-api .
# Debian 12 is named in the tag: the bare 3.11-slim tag moves to each new Debian release.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8080
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.txt

COPY swiftchat_api ./swiftchat_api
COPY wsgi.py gunicorn.conf.py ./

# A fixed numeric user: Kubernetes' runAsNonRoot can verify it, and a bind mount can be given to it
# (chown 10001:10001). Per-person keys and usage live in SQLite unless SWIFTCHAT_STORE names Redis:
# keep /data on a volume.
RUN groupadd --gid 10001 swiftchat \
 && useradd --uid 10001 --gid 10001 --no-create-home --no-log-init --home-dir /nonexistent \
      --shell /usr/sbin/nologin swiftchat \
 && mkdir /data && chown 10001:10001 /data && chmod 0700 /data
ENV SWIFTCHAT_STORE=sqlite:////data/swiftchat.db
VOLUME /data
USER 10001:10001

EXPOSE 8080
# The slim image has no curl. (podman and buildah keep a HEALTHCHECK only with --format docker.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python3", "-c", \
  "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]
# gunicorn finishes open streams on SIGTERM for GRACEFUL_TIMEOUT (120 s): run with --stop-timeout 130.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
