# The control plane: the web server (gunicorn) by default; the same image runs the Celery worker,
# Celery beat and one-off commands (migrations) with another command. See docs/operations.md.
#   docker build -t REGION-docker.pkg.dev/PROJECT/controlplane/controlplane .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time; whitenoise serves them (hashed names, compressed).
# The settings refuse to load without these three when DEBUG is off; these values are for this
# step only and are not kept in the image.
RUN DEBUG=0 SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --noinput \
 && rm -rf /tmp/build-var

# An unprivileged user whose home is VAR_DIR, the one place it writes (beat's schedule file,
# gunicorn's control socket).
RUN useradd --system --uid 10001 --no-create-home --home-dir /app/var controlplane \
 && mkdir -p /app/var \
 && chown controlplane /app/var
USER controlplane

ENV DEBUG=0 \
    VAR_DIR=/app/var \
    BIND_HOST=0.0.0.0 \
    PORT=8080
EXPOSE 8080
CMD ["sh", "-c", "exec gunicorn controlplane.wsgi --bind \"${BIND_HOST}:${PORT}\" --workers \"${WEB_CONCURRENCY:-2}\" --threads 4 --access-logfile - --graceful-timeout 10"]
