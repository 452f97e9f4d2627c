# syntax=docker/dockerfile:1
# A model server image: ONE model version baked in, served over KServe v2 by
# `agenticpet model-server` (src/imaging/model-server.ts). Built for the Fargate service's
# platform and pushed to that model's own repository, tagged with the model's version:
#
#   docker buildx build --platform linux/arm64 -f deploy/model-server.Dockerfile \
#     --build-arg MODEL=image-kind --build-arg MODEL_VERSION=1.0.0 \
#     -t <account>.dkr.ecr.<region>.amazonaws.com/agenticpet-<env>-model-image-kind:1.0.0 --push .
#
# onnxruntime-node's CPU binaries for linux/arm64 and linux/x64 ship inside the npm package
# (bin/napi-v6/linux/<arch>); `npm ci --ignore-scripts` never runs its install script (the CUDA
# download), and .npmrc (onnxruntime-node-install=skip) says the same should scripts ever run.
# The package carries every platform's binaries (~290 MB); all but the image's own are removed.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: compile TypeScript on the build host's own platform (the output is plain JS) ----
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY infra/package.json infra/package.json
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies for the target platform, compiled code, one model ----
FROM ${NODE_IMAGE} AS runtime
ARG MODEL
ARG MODEL_VERSION
ENV NODE_ENV=production \
    MODELS_DIR=/app/models
WORKDIR /app
RUN test -n "$MODEL" && test -n "$MODEL_VERSION" || (echo 'build with --build-arg MODEL=<name> --build-arg MODEL_VERSION=<version>' >&2 && exit 1)
COPY package.json package-lock.json .npmrc ./
COPY infra/package.json infra/package.json
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
    && npm cache clean --force \
    && rm -rf infra node_modules/@agenticpet \
    && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 2 -maxdepth 2 -type d ! -path "*/linux/$(node -p "process.arch")" -exec rm -rf {} + \
    && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/$(node -p "process.arch")/onnxruntime_binding.node
COPY --from=build /app/dist ./dist
COPY models/${MODEL}/${MODEL_VERSION} ./models/${MODEL}/${MODEL_VERSION}
# The artefact must match its card before the image exists (the server checks again at start).
RUN node -e "const c=require('crypto'),f=require('fs'),d='models/'+process.env.MODEL+'/'+process.env.MODEL_VERSION;const h=c.createHash('sha256').update(f.readFileSync(d+'/model.onnx')).digest('hex');const s=JSON.parse(f.readFileSync(d+'/card.json','utf8')).sha256;if(h!==s){console.error('model.onnx '+h+' != card '+s);process.exit(1)}"
# The official image's unprivileged user (uid 1000).
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:8080/v2/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
# Exec form: node is PID 1 and receives SIGTERM itself.
CMD ["node", "dist/cli.js", "model-server", "--port", "8080"]
