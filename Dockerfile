FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files (admin, Swagger UI from drf-spectacular-sidecar) are collected into the image
# and served by WhiteNoise: no CDN, nothing to mount. The build uses the dev settings only
# to find the files; nothing secret is involved.
RUN BROKERSYNC_ENV=local python manage.py collectstatic --noinput \
    && useradd --create-home brokersync && mkdir -p var && chown -R brokersync var
USER brokersync
EXPOSE 8000
CMD ["gunicorn", "backend.config.wsgi", "-b", "0.0.0.0:8000", "--workers", "2", "--threads", "8"]
