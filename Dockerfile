# recloop HTTP service under Gunicorn with uvicorn workers.
#   docker build -t recloop .
#   docker run -p 8000:8000 -v "$PWD/runs/NAME:/models/current" recloop
# Pass --build-arg TORCH_INDEX_URL=<a CPU-only PyTorch wheel index> for a much smaller image;
# by default torch comes from the default index (a CUDA build on Linux x86-64).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# torch first, pinned, in its own layer: the project's dependencies then find it satisfied
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --create-home --uid 10001 recloop && mkdir -p /models && chown recloop /models
COPY gunicorn.conf.py ./

USER recloop
# Inside the container the service must listen on all interfaces for -p to reach it.
ENV RECLOOP_HOST=0.0.0.0 \
    RECLOOP_PORT=8000 \
    RECLOOP_MODEL_PATH=/models/current \
    RECLOOP_WORKERS=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["gunicorn", "--no-control-socket", "-c", "gunicorn.conf.py"]
