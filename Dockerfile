# syntax=docker/dockerfile:1
# AgenticPet API image. Multi-arch: docker buildx build --platform linux/arm64,linux/amd64 .
# (see docs/deploy.md). The runtime image holds only the root's production dependencies, dist/
# and the knowledge base: no TypeScript, no CDK (infra/ is a workspace of dev-only packages).

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript on the build host's own platform (the output is plain JS) ----
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY infra/package.json infra/package.json
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies for the target platform, compiled code, knowledge base ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    HOST=0.0.0.0 \
    AGENTICPET_DATA_DIR=/var/lib/agenticpet
WORKDIR /app
COPY package.json package-lock.json ./
COPY infra/package.json infra/package.json
# --omit=dev leaves out every devDependency, infra's CDK packages included; --ignore-scripts
# skips the root's `prepare` (a build, already done in the build stage) and onnxruntime-node's
# install script (a CUDA download; its CPU binaries ship in the package, for every platform,
# ~290 MB: all but this image's own are removed).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force \
    && rm -rf infra node_modules/@agenticpet \
    && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 2 -maxdepth 2 -type d ! -path "*/linux/$(node -p "process.arch")" -exec rm -rf {} + \
    && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/$(node -p "process.arch")/onnxruntime_binding.node \
    && mkdir -p /var/lib/agenticpet \
    && chown node:node /var/lib/agenticpet
COPY --from=build /app/dist ./dist
COPY data/knowledge ./data/knowledge
# The image models (models/<name>/<version>/model.onnx + card.json), for MODELS_DIR's default:
# run in process when MODEL_SERVER_URL is unset (in AWS they run on their own service).
COPY models ./models
# The /ops dashboard's page (HTML, CSS, browser JavaScript) is read at start, not compiled.
COPY src/http/ops ./src/http/ops
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 3000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
# Exec form: node is PID 1 and receives SIGTERM itself, so `serve` drains in-flight requests.
CMD ["node", "--max-semi-space-size=64", "dist/cli.js", "serve"]
