# scim-bridge: a slim, non-root image. Build: docker build -t scim-bridge .
# Run: docker run -p 8000:8000 -v scim-bridge-data:/data scim-bridge
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scim_bridge ./scim_bridge
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 scim \
    && mkdir /data && chown scim /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER scim
WORKDIR /data
ENV SCIM_BRIDGE_HOST=0.0.0.0 \
    SCIM_BRIDGE_PORT=8000 \
    SCIM_BRIDGE_DATABASE_URL=sqlite:////data/scim-bridge.db
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["scim-bridge"]
CMD ["serve"]
