# Build the manager and gateway binaries
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Copy the Go module manifests first and download dependencies, so the
# module cache layer is reused as long as go.mod and go.sum don't change.
COPY go.mod go.sum ./
RUN go mod download

# Copy the Go sources (.dockerignore keeps only api/, cmd/, controllers/,
# internal/ and pkg/).
COPY . .

# GOARCH has no default, so the binaries are built for the platform of the host
# building the image unless --platform sets TARGETOS/TARGETARCH.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o manager ./cmd/manager
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o gateway ./cmd/gateway

# Use distroless as minimal base image to package the binaries: /manager is
# the entrypoint, config/gateway runs /gateway from the same image.
# Refer to https://github.com/GoogleContainerTools/distroless for more details.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/manager .
COPY --from=builder /workspace/gateway .
USER 65532:65532

ENTRYPOINT ["/manager"]
