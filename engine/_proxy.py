"""Which HTTP proxy the environment names for a URL, read as curl and requests read it.

`https_proxy` / `http_proxy` / `all_proxy` (lower case wins over upper case) and `no_proxy`.
Messages never repeat a proxy setting: it may hold a password. They show a URL only as
`public_url()` rebuilds it from its parts, which is how every engine message shows one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from engine._conn import ConnectFailed


class Proxy(NamedTuple):
    host: str
    port: int
    auth: str | None  # the Proxy-Authorization value, from the proxy URL's user:password
    label: str  # http://host:port, without credentials: the only form shown in errors

    def __repr__(self) -> str:
        return f"Proxy({self.label})"  # never the credentials, even base64-encoded


_MALFORMED_PROXY = "malformed proxy setting (percent-encode special characters in its user name and password)"
_KNOWN_SCHEMES = frozenset({"http", "https", "socks4", "socks4a", "socks5", "socks5h"})


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> Proxy | None:
    """The proxy the environment names for `scheme://host:port`, as curl and requests read it.

    Raises ConnectFailed (permanent) for a proxy it cannot use; messages never repeat the
    setting itself, which may hold a password.
    """
    # Lower-case names win over upper-case ones, as in curl and requests.
    found = sorted((k.islower(), k.lower()[:-6], v) for k, v in env.items() if k.lower().endswith("_proxy"))
    proxies = {name: value for _, name, value in found if value}
    url = proxies.get(scheme) or proxies.get("all")
    if not url or bypassed(host, port, proxies.get("no", "")):
        return None
    try:
        p = urlsplit(url if "://" in url else f"http://{url}")
        proxy_host, proxy_port = p.hostname, p.port or 80
    except ValueError:
        raise ConnectFailed(_MALFORMED_PROXY, permanent=True) from None
    if p.scheme != "http":
        shown = f"{p.scheme}:// " if p.scheme in _KNOWN_SCHEMES else ""
        raise ConnectFailed(f"unsupported {shown}proxy: only http:// proxies are supported", permanent=True)
    if not proxy_host or p.path not in ("", "/") or p.query or p.fragment:
        raise ConnectFailed(_MALFORMED_PROXY, permanent=True)
    auth = None
    if p.username is not None:
        import base64

        pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
        auth = "Basic " + base64.b64encode(pair).decode()
    return Proxy(proxy_host, proxy_port, auth, f"http://{authority(proxy_host, proxy_port, -1)}")


DEFAULT_PORTS = {"http": 80, "https": 443}


def public_url(url: str, *, path: bool = True) -> str:
    """`url` as messages show it: scheme://host[:port][/path], rebuilt from its parts.

    Rebuilt, not cut out of the text: `user:password@` cannot slip through, and neither can the
    query and fragment (signed URLs carry credentials there). An unusable port is shown as it
    was written; it comes after the credentials, so it cannot hold them.
    """
    try:
        p = urlsplit(url)
    except ValueError:
        return "(malformed URL)"  # nothing can be told apart safely: show none of it
    host = p.hostname
    if not host:
        return "(URL without a host)"  # `user:password@host` without `//` parses as a path
    scheme = p.scheme.lower()
    default = DEFAULT_PORTS.get(scheme, -1)
    try:
        shown = authority(host, p.port or default, default)
    except ValueError:
        raw_port = p.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
        shown = f"{authority(host, default, default)}:{raw_port}"
    return f"{scheme}://{shown}{p.path if path else ''}"


def authority(host: str, port: int, default_port: int) -> str:
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return host if port == default_port else f"{host}:{port}"


def bypassed(host: str, port: int, no_proxy: str) -> bool:
    """Whether `no_proxy` exempts `host:port`: `*` alone, names and their subdomains (with an
    optional port), IP addresses and CIDR blocks."""
    if no_proxy.strip() == "*":
        return True
    host = host.strip("[]").lower().rstrip(".")
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry or entry == "*":
            continue
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry_port = None
        if entry.startswith("["):  # [v6]:port
            entry, _, rest = entry[1:].partition("]")
            entry_port = rest[1:] or None
        elif entry.count(":") == 1:
            entry, entry_port = entry.split(":")
        if entry_port is not None and entry_port != str(port):
            continue
        entry = entry.lstrip(".").rstrip(".")
        if host == entry or (ip is None and host.endswith("." + entry)):
            return True
    return False
