# swiftchat-api: gunicorn with gevent workers. Build: docker build -t swiftchat-api .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=8080
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY swiftchat_api ./swiftchat_api
COPY wsgi.py gunicorn.conf.py ./

# Per-person keys and usage live in SQLite unless SWIFTCHAT_STORE names Redis: keep it on a volume.
RUN useradd --system --no-create-home swiftchat && mkdir /data && chown swiftchat /data
ENV SWIFTCHAT_STORE=sqlite:////data/swiftchat.db
VOLUME /data
USER swiftchat

EXPOSE 8080
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
