"""The bundled HTTP/1.1 mock target."""
