# targetd service image: multi-stage, non-root, with a gRPC health probe.
#   docker build -t targetd .
#   docker run -p 50051:50051 -e TARGETD_CLIENT=acmeclient -e TARGETD_ORGANIZATION_ID=123@AdobeOrg targetd

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# gcc and the C headers: the hot modules are compiled with mypyc (tools/compile.py, as `make compile` does).
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The protocol (targetd-api) and the server only: no Python client, no local edge stand-in (tools/edge).
COPY api/python api/python
COPY server server
COPY tools/compile.py tools/compile.py
COPY pyproject.toml README.md constraints.txt ./
# constraints.txt: the same pins as development and CI (make lock). The compiler and the type stubs it
# checks against live in a throw-away venv; the wheel of the server then carries the extensions
# (pyproject.toml: artifacts), and their shared library goes beside the package.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install -c constraints.txt ./api/python . mypy setuptools types-protobuf types-grpcio types-pyyaml \
 && /opt/build/bin/python tools/compile.py \
 && python -m venv /opt/targetd \
 && /opt/targetd/bin/pip install -c constraints.txt ./api/python . \
 && cp server/targetd_native__mypyc*.so "$(/opt/targetd/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')/" \
 && find /opt/targetd -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN groupadd --system --gid 10001 targetd \
 && useradd --system --uid 10001 --gid targetd --home-dir /var/lib/targetd --shell /usr/sbin/nologin targetd \
 && mkdir -p /var/lib/targetd && chown targetd:targetd /var/lib/targetd
COPY --from=build /opt/targetd /opt/targetd
ENV PATH=/opt/targetd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TARGETD_LISTEN=0.0.0.0:50051 \
    TARGETD_DATA_DIR=/var/lib/targetd \
    TARGETD_METRICS_LISTEN=0.0.0.0:9464
USER 10001:10001
VOLUME ["/var/lib/targetd"]
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["targetd", "probe", "--address", "127.0.0.1:50051"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["targetd"]
CMD ["serve"]
