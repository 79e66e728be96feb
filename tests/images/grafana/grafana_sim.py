"""STAND-IN for grafana/grafana-oss (no Grafana server can be installed here).

Reads what the real Grafana reads, at the same paths:
  /etc/grafana/provisioning/datasources/*.yaml   datasources (apiVersion 1)
  /etc/grafana/provisioning/dashboards/*.yaml    dashboard providers (type file, options.path)
and serves, with basic auth admin:$GF_SECURITY_ADMIN_PASSWORD (Grafana's default admin password
`admin` when unset, as the real one):
  GET /api/health
  GET /api/datasources
  GET /api/dashboards/uid/<uid>
  GET /api/datasources/proxy/uid/<uid>/query?q=...   proxied to the datasource's InfluxDB with its dbName
"""

import base64
import glob
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

PROVISIONING = os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning")


def load_yaml(pattern):
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as fh:
            yield yaml.safe_load(fh) or {}


def datasources():
    return [ds for doc in load_yaml(f"{PROVISIONING}/datasources/*.yaml") for ds in doc.get("datasources", [])]


def dashboards():
    found = {}
    for doc in load_yaml(f"{PROVISIONING}/dashboards/*.yaml"):
        for provider in doc.get("providers", []):
            for path in sorted(glob.glob(os.path.join(provider["options"]["path"], "*.json"))):
                with open(path, encoding="utf-8") as fh:
                    dashboard = json.load(fh)
                found[dashboard["uid"]] = dashboard
    return found


class Handler(BaseHTTPRequestHandler):
    def send_json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def authorized(self):
        # Grafana's [auth.anonymous] enabled: a viewer without credentials
        if os.environ.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
            return True
        password = os.environ.get("GF_SECURITY_ADMIN_PASSWORD", "admin")
        expected = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
        return self.headers.get("Authorization") == expected

    def do_GET(self):  # noqa: N802 - http.server's name
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/health":
            return self.send_json(200, {"database": "ok", "version": "stand-in"})
        if not self.authorized():
            return self.send_json(401, {"message": "invalid username or password"})
        if url.path == "/api/datasources":
            return self.send_json(200, [{k: v for k, v in ds.items() if k != "secureJsonData"} for ds in datasources()])
        if url.path.startswith("/api/dashboards/uid/"):
            dashboard = dashboards().get(url.path.rsplit("/", 1)[1])
            if dashboard is None:
                return self.send_json(404, {"message": "Dashboard not found"})
            return self.send_json(200, {"dashboard": dashboard, "meta": {"provisioned": True}})
        if url.path.startswith("/api/datasources/proxy/uid/"):
            uid, _, rest = url.path[len("/api/datasources/proxy/uid/"):].partition("/")
            source = next((ds for ds in datasources() if ds.get("uid") == uid), None)
            if source is None:
                return self.send_json(404, {"message": "Data source not found"})
            params = dict(urllib.parse.parse_qsl(url.query))
            params.setdefault("db", source.get("jsonData", {}).get("dbName", ""))
            request = urllib.request.Request(f"{source['url']}/{rest}?{urllib.parse.urlencode(params)}")
            header = source.get("jsonData", {}).get("httpHeaderName1")
            if header:
                request.add_header(header, source.get("secureJsonData", {}).get("httpHeaderValue1", ""))
            try:
                with urllib.request.urlopen(request, timeout=10) as resp:
                    return self.send_json(resp.status, json.load(resp))
            except urllib.error.HTTPError as exc:
                return self.send_json(exc.code, {"message": exc.read().decode(errors="replace")})
            except OSError as exc:
                return self.send_json(502, {"message": f"datasource unreachable: {exc}"})
        return self.send_json(404, {"message": "Not found"})

    def log_message(self, fmt, *args):
        print("grafana stand-in:", fmt % args, flush=True)


if __name__ == "__main__":
    print(f"grafana stand-in: {len(datasources())} datasources, dashboards {sorted(dashboards())}", flush=True)
    # Grafana's own settings for [server] http_addr and http_port
    address = os.environ.get("GF_SERVER_HTTP_ADDR") or "0.0.0.0"
    ThreadingHTTPServer((address, int(os.environ.get("GF_SERVER_HTTP_PORT") or 3000)), Handler).serve_forever()
