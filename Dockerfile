# The plugin as an OCI image for Istio's WasmPlugin (`url: oci://...`), "compat" variant of the
# Wasm image spec: istio-agent takes the LAST layer, requires media type
# application/vnd.oci.image.layer.v1.tar+gzip (or the Docker rootfs.diff.tar.gzip) and extracts
# the entry whose basename is plugin.wasm. So: no base image, exactly one layer, one file.
#
# Build it with `make image` (tools/image.ts): the build context is a staging directory holding
# only plugin.wasm (a copy of build/plugin.wasm), and buildah runs with fixed timestamps and no
# history so that the same plugin.wasm always gives the same manifest digest. By hand:
#   buildah bud --format oci --timestamp 0 --omit-history --identity-label=false \
#     --annotation module.wasm.image/variant=compat --build-arg VERSION=x.y.z -f Dockerfile build/
FROM scratch

ARG VERSION=0.0.0-dev
ARG SOURCE=""

# Standard OCI labels (they land in the image config, so they are part of the digest).
LABEL org.opencontainers.image.title="mesh-telemetry-wasm" \
      org.opencontainers.image.description="Istio-compatible metrics and trace context for Envoy, as a proxy-wasm plugin in AssemblyScript" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      module.wasm.image/variant="compat"
# The spec-compat text also asks for module.wasm.image/variant=compat as a MANIFEST annotation
# for OCI-typed layers; a Dockerfile cannot set those, so tools/image.ts passes --annotation.
# Istio itself ignores both (it looks only at the layer); they document the variant.

# Fixed mode so the tar header does not depend on the builder's umask.
COPY --chmod=0444 plugin.wasm /plugin.wasm
