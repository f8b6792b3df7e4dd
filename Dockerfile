# backupd and backupctl in a small image, for docker-compose.yml.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/backupd ./cmd/backupd \
 && CGO_ENABLED=0 go build -trimpath -o /out/backupctl ./cmd/backupctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/backupd /out/backupctl /usr/local/bin/
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/backupd"]
