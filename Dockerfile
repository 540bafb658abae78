# A first working image of the bot: `docker build -t stagingbot .` then
# `docker run -v $PWD/config.toml:/etc/stagingbot/config.toml stagingbot run`.
# (Not built on the development machines, which have no Docker engine.)
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN python -m venv /opt/stagingbot && /opt/stagingbot/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent stagingbot
COPY --from=build /opt/stagingbot /opt/stagingbot
COPY manifests /app/manifests
WORKDIR /app
ENV PATH=/opt/stagingbot/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STAGINGBOT_CONFIG=/etc/stagingbot/config.toml \
    STAGINGBOT_SERVER_HOST=0.0.0.0
USER 10001
EXPOSE 8080
ENTRYPOINT ["stagingbot"]
CMD ["run"]
