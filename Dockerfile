# syntax=docker/dockerfile:1
# The gateway with its sandbox. Run it privileged: it mounts the jail, switches uids and
# manages cgroups (docker run --privileged -p 8080:8080 -v fngw-data:/data fngw).

# The lock-down library: Go, built as a C shared library; the policy's answers to the calls it
# refuses (refusals.json); the launcher of Node interpreters.
FROM golang:1.26-bookworm AS native
WORKDIR /src/native
COPY native/go.mod native/go.sum ./
RUN go mod download
COPY native/ ./
RUN CGO_ENABLED=1 go build -trimpath -buildmode=c-shared -o build/libsandbox.so ./cmd/libsandbox \
 && go run ./cmd/tables -refusals > build/refusals.json \
 && cc -O2 -Wall -Werror -o build/fngw-exec launcher/fngw-exec.c

# Node dependencies (better-sqlite3 and koffi are native addons).
FROM node:22-bookworm AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# The Node that runs functions (Node 24 LTS, the registry's node-linux-<arch> package), pinned
# apart from the gateway's dependencies.
FROM node:22-bookworm AS function-node
WORKDIR /app/runtimes/node
COPY runtimes/node/package.json runtimes/node/package-lock.json ./
RUN npm ci --no-audit --no-fund

# The web console: static files built by Vite (served at /console/).
FROM node:22-bookworm AS console
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY console ./console
RUN npx vite build --config console/vite.config.ts

FROM node:22-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates tzdata libc-bin iptables \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=function-node /app/runtimes/node/node_modules ./runtimes/node/node_modules
COPY --from=native /src/native/build/libsandbox.so /src/native/build/refusals.json /src/native/build/fngw-exec ./native/build/
COPY package.json tsconfig.json ./
COPY src ./src
COPY prescripts ./prescripts
COPY migrations ./migrations
COPY --from=console /app/console/dist ./console/dist
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/main.ts"]
