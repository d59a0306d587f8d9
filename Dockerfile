# The mqchat image: one image for every role (MQCHAT_ROLE) and both profiles.
#   docker build -t mqchat:latest .
#   docker run --rm mqchat:latest --help
# Node 24 LTS. No native modules (SQLite is node:sqlite), so no compiler either.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY api ./api
COPY bench ./bench
COPY bridge ./bridge
COPY broker ./broker
COPY clients ./clients
COPY cluster ./cluster
COPY core ./core
COPY lib ./lib
COPY media ./media
COPY mosquitto-compat-tests ./mosquitto-compat-tests
COPY plugins ./plugins
COPY push ./push
COPY server ./server
COPY store ./store
COPY test ./test
COPY xmpp ./xmpp
# npm ci runs the build (prepare); then only runtime dependencies stay, and
# neither the tests, the conformance suite nor the benchmarks. --omit=optional
# leaves out the Node binary npm scripts use on a developer's machine (the
# node-linux-* packages): the image has its own Node.
RUN npm ci --no-audit --no-fund --omit=optional && npm prune --omit=dev --omit=optional && rm -rf dist/test dist/mosquitto-compat-tests dist/bench

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    MQCHAT_DATA_DIR=/var/lib/mqchat
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The CLI's end-to-end encryption (vodozemac, WebAssembly), loaded from beside dist/.
COPY --from=build /app/clients/cli/e2ee/pkg ./clients/cli/e2ee/pkg
COPY docs ./docs
COPY README.md LICENSE ./
RUN mkdir -p /var/lib/mqchat && chown node:node /var/lib/mqchat
USER node
VOLUME ["/var/lib/mqchat"]
# MQTT, MQTT over WebSocket, HTTP API (each only in the roles that listen).
EXPOSE 1883 8083 3000
# SIGTERM reaches node directly (exec form): graceful shutdown.
ENTRYPOINT ["node", "dist/clients/cli/main.js"]
CMD ["serve"]
