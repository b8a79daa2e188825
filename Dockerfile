# Build a static binary, then ship it alone in a minimal non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mediator ./cmd/mediator \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/mediator /usr/local/bin/mediator
COPY --from=build --chown=nonroot:nonroot /out/data /app/data
USER nonroot:nonroot
ENV DATABASE_URL=sqlite://data/mediator.db
VOLUME ["/app/data"]
EXPOSE 6000
ENTRYPOINT ["/usr/local/bin/mediator"]
