vcl 4.1;
# Varnish 7 doing what Lakka's default configuration does, for
# "make bench-peers": TTL from the origin (Surrogate-Control first), grace
# from stale-while-revalidate (default 10s), keep from stale-if-error, gzip
# stored once, tracking cookies and query parameters stripped, other cookies
# passed, purge by tag (Surrogate-Key, via vmod xkey) and by URL.
# scripts/bench-peers.sh replaces __ORIGIN_HOST__ and __ORIGIN_PORT__.

import std;
import xkey;

backend origin {
    .host = "__ORIGIN_HOST__";
    .port = "__ORIGIN_PORT__";
    .connect_timeout = 1s;
    .first_byte_timeout = 15s;
    .between_bytes_timeout = 10s;
}

acl purgers {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey) {
            if (req.http.xkey-soft == "1") {
                set req.http.x-purged = xkey.softpurge(req.http.xkey);
            } else {
                set req.http.x-purged = xkey.purge(req.http.xkey);
            }
            return (synth(200, "Purged"));
        }
        return (purge);
    }
    # Tracking query parameters (Lakka's key.strip_query defaults).
    if (req.url ~ "[?&](utm_[a-z]+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid)=") {
        set req.url = regsuball(req.url, "([?&])(utm_[a-z]+|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid)=[^&]*&?", "\1");
        set req.url = regsub(req.url, "[?&]+$", "");
    }
    # Analytics cookies never change a page (Lakka's cache.strip_cookies);
    # any other cookie makes the request private (the builtin VCL passes).
    if (req.http.Cookie) {
        set req.http.Cookie = regsuball(req.http.Cookie, "(^|;\s*)(_ga[^=]*|_gid|_gat[^=]*|_fbp|_fbc|__utm[^=]*|_gcl_[^=]*)=[^;]*", "");
        set req.http.Cookie = regsub(req.http.Cookie, "^;\s*", "");
        if (req.http.Cookie ~ "^\s*$") {
            unset req.http.Cookie;
        }
    }
}

sub vcl_hit {
    if (obj.ttl <= 0s) {
        set req.http.x-stale = "1";
    }
}

sub vcl_backend_response {
    # Surrogate-Control max-age wins over Cache-Control, as in Lakka.
    if (beresp.http.Surrogate-Control ~ "max-age=[0-9]+") {
        set beresp.ttl = std.duration(regsub(beresp.http.Surrogate-Control, ".*max-age=([0-9]+).*", "\1") + "s", beresp.ttl);
    }
    if (beresp.http.Cache-Control ~ "stale-if-error=[0-9]+") {
        set beresp.keep = std.duration(regsub(beresp.http.Cache-Control, ".*stale-if-error=([0-9]+).*", "\1") + "s", 0s);
    }
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    if (beresp.http.Content-Type ~ "^(text/|application/(json|javascript|xml|rss\+xml|atom\+xml|xhtml\+xml|manifest\+json|ld\+json)|image/svg\+xml)") {
        set beresp.do_gzip = true;
    }
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits > 0) {
        if (req.http.x-stale) {
            set resp.http.X-Cache = "STALE";
        } else {
            set resp.http.X-Cache = "HIT";
        }
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.Surrogate-Control;
}

sub vcl_synth {
    if (req.http.x-purged) {
        set resp.http.X-Purged = req.http.x-purged;
    }
}
