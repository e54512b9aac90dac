# The emulator as a drop-in for Dify's plugin_daemon service; see docker/docker-compose.yaml.
#   docker build -t dify-plugin-daemon-emulator .
#   docker run --init -p 5002:5002 -v "$PWD/my_plugin:/plugins/my_plugin:ro" dify-plugin-daemon-emulator
# (--init: plugins run with the subprocess runtime exit when their parent is PID 1.)

FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY emulator ./emulator
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -r /tmp/wheels
# /plugins holds the bundled example; mount more plugins beside it at /plugins/<name>, or a
# folder of plugins over all of /plugins to serve only those.
RUN mkdir /plugins \
    && ln -s "$(python -c 'from emulator.config import EXAMPLE_PLUGIN; print(EXAMPLE_PLUGIN)')" \
        /plugins/echo \
    && groupadd --gid 10001 emulator \
    && useradd --uid 10001 --gid 10001 --create-home emulator
USER 10001:10001

# Configuration is by environment only (README, "Serving"). SERVER_KEY is unset: the key is
# then plugin-api-key, the default of Dify's PLUGIN_DAEMON_KEY outside docker compose.
ENV SERVER_HOST=0.0.0.0 \
    SERVER_PORT=5002 \
    EMULATOR_PLUGIN_DIRS=/plugins
EXPOSE 5002
# The port opens only once every plugin has loaded, so this turns healthy only then. No
# key needed; proxies bypassed, since Dify's compose may set HTTP_PROXY for this service.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/health/check' % os.environ.get('SERVER_PORT', '5002'), timeout=4)"]
CMD ["python", "-m", "emulator", "serve"]
