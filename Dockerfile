FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home brokersync && mkdir -p var && chown -R brokersync var
USER brokersync
EXPOSE 8000
CMD ["gunicorn", "backend.config.wsgi", "-b", "0.0.0.0:8000", "--workers", "2", "--threads", "8"]
