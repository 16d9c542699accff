"""schemathesis hooks of .ci/openapi.sh: the binary uploads (a zipped city package, layer files)
are sent as raw bytes, as schemathesis sends application/octet-stream."""
import schemathesis

for media_type in ("application/zip", "application/flatgeobuf", "application/toml", "application/x-ndjson"):
    schemathesis.serializer.alias(media_type, "application/octet-stream")
