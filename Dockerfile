# evalstream server image. The steps are the Makefile's: `make install EXTRAS=server`
# (torch first, then the project, then WordNet for METEOR), `make model` (the default
# BERTScore model into the image's model cache /models, outside the /data volume, so
# any volume or bind mount serves), then `evalstream-server` as `make serve` runs it.
#
#   docker build -t evalstream .                          # CPU torch
#   docker build --build-arg TORCH=cuda -t evalstream .   # CUDA torch from PyPI
#   docker run -p 50051:50051 -p 8080:8080 -p 9464:9464 -v evalstream-data:/data \
#       -v /etc/evalstream:/etc/evalstream:ro \
#       -e EVALSTREAM_AUTH_TOKENS_FILE=/etc/evalstream/tokens.json \
#       -e EVALSTREAM_TLS_CERT=/etc/evalstream/server.pem -e EVALSTREAM_TLS_KEY=/etc/evalstream/server.key \
#       evalstream
# The image listens on 0.0.0.0, so the server refuses to start without tokens
# (or an explicit --no-auth) and TLS (or an explicit --insecure): see docs/operations/security.md.
FROM python:3.11-slim

ARG TORCH=cpu
ARG CPU_TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
ARG CUDA_TORCH_SPEC="torch>=2.4,<3"

RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin evalstream

WORKDIR /app
COPY pyproject.toml README.md Makefile ./
COPY protos ./protos
COPY client ./client
COPY server ./server
COPY scripts ./scripts

ENV VENV=/opt/venv
RUN case "$TORCH" in \
      cpu) spec="$CPU_TORCH_SPEC" ;; \
      cuda) spec="$CUDA_TORCH_SPEC" ;; \
      *) echo "TORCH must be cpu or cuda" >&2; exit 1 ;; \
    esac \
    && make install VENV=$VENV EXTRAS=server TORCH_SPEC="$spec" \
    && make model VENV=$VENV EXTRAS=server MODEL_DIR=/models \
    && mkdir -p /data && chown -R evalstream /data

ENV PATH=/opt/venv/bin:$PATH \
    EVALSTREAM_HOST=0.0.0.0 \
    EVALSTREAM_PORT=50051 \
    EVALSTREAM_HTTP_PORT=8080 \
    EVALSTREAM_METRICS_HOST=0.0.0.0 \
    EVALSTREAM_METRICS_PORT=9464 \
    EVALSTREAM_DATA_DIR=/data \
    EVALSTREAM_MODEL_DIR=/models

USER evalstream
VOLUME ["/data"]
EXPOSE 50051 8080 9464

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["evalstream", "--target", "127.0.0.1:50051", "--timeout", "4", "health"]

STOPSIGNAL SIGTERM
CMD ["evalstream-server"]
