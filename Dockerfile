# Two images from one file:
#   api     - the HTTP API (ONNX Runtime + FAISS + FastAPI, no torch)
#   builder - trains, exports and indexes (adds torch); used once by docker compose
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
# Every package of the product (tests/test_docker.py checks that none is missing)
COPY core ./core
COPY catalog ./catalog
COPY inference ./inference
COPY model_export ./model_export
COPY index_build ./index_build
COPY pipeline ./pipeline
COPY service ./service
COPY evaluation ./evaluation
COPY bench ./bench
COPY cli ./cli

FROM base AS api
RUN pip install -c constraints.txt -e '.[serve]'
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["cmar", "serve", "--model", "/data/model", "--index", "/data/index", "--map", "/data/map", "--host", "0.0.0.0", "--port", "8000"]

FROM base AS builder
# torch from the PyTorch CPU wheel index: the default index would pull the multi-GB CUDA build.
# Where that index is out of reach, fill wheels/ on the host (wheels/README.md) and build with
#   --build-arg TORCH_PIP_ARGS="--no-index --find-links /app/wheels"
# (bind-mounted for the install only: the wheels never enter a layer).
ARG TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
RUN --mount=type=bind,source=wheels,target=/app/wheels \
    pip install ${TORCH_PIP_ARGS} "torch==$(sed -n 's/^torch==//p' constraints.txt)" \
    && pip install -c constraints.txt -e '.[train]'
CMD ["cmar", "run", "--workdir", "/data", "--no-serve", "--skip-existing"]
