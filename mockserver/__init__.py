"""The bundled HTTP/1.1 mock target: what a user embeds or validates against.

`parse_config` checks a config dict (the routes file's, `PUT /_mock/config`'s and the
harness's `[target.mock]` shape) and raises `ConfigError` naming the bad field.
"""

from mockserver.config import MockConfig, load_config_file, parse_config
from mockserver.errors import ConfigError

__all__ = ["ConfigError", "MockConfig", "load_config_file", "parse_config"]
