#!/bin/sh
# Runs its arguments (`node ... bin/certbound.js ...`) with jemalloc as the allocator when the library is installed
# (Debian/Ubuntu: libjemalloc2), and as they are otherwise. `npm start`, the Dockerfile and the benchmark launch
# certbound through it. OpenSSL 3.0 allocates and frees many small blocks per TLS handshake, and in a long-running
# Node process glibc's allocator spent a tenth of a new connection's CPU on them (README, Operations: "Memory").
# CERTBOUND_MALLOC=system keeps glibc's allocator; an LD_PRELOAD already set is left alone. The gateway's start
# line says which allocator it runs on ("allocator").
if [ "${CERTBOUND_MALLOC:-}" != system ] && [ -z "${LD_PRELOAD:-}" ]; then
  for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 \
    /usr/lib64/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
    if [ -r "$lib" ]; then
      LD_PRELOAD=$lib
      # freed pages go back to the system after 1 s instead of jemalloc's 10 s: under keep-alive load RSS stays at
      # 110-127 MB where the default touched 170 MB (bench/README.md, "New-connection cost"); yours wins if set
      MALLOC_CONF=${MALLOC_CONF:-dirty_decay_ms:1000,muzzy_decay_ms:0}
      export LD_PRELOAD MALLOC_CONF
      break
    fi
  done
fi
exec "$@"
