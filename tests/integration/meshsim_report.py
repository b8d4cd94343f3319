#!/usr/bin/env python3
"""meshsim --report DIR (DESIGN §8): report.json in the contract's shape,
topology.svg with one server element per server of the organization,
convergence.svg with one point per state change, both well-formed XML
(xmllint) and rendered by headless Chromium to PNG without an error.
Runs examples/scenarios/gateway-backup.sim live.

usage: meshsim_report.py MESHSIM SCENARIO
"""
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodelib import check, done  # noqa: E402

meshsim, scenario = sys.argv[1], os.path.abspath(sys.argv[2])
W = tempfile.mkdtemp(prefix="mm-meshsim-report.")
rep = os.path.join(W, "report")
r = subprocess.run([meshsim, "run", scenario, "--report", rep], capture_output=True, text=True,
                   timeout=600)
check(r.returncode == 0, "the scenario passes (%d; %s)" % (r.returncode, r.stdout[-300:]))

j = json.load(open(os.path.join(rep, "report.json")))
keys = {"scenario", "mode", "seed", "passed", "expectations", "messages", "changes", "bytes",
        "event_log_sha256"}
check(keys <= set(j), "report.json has every key of DESIGN §8 (%s)" % sorted(set(j)))
check(j["mode"] == "live" and j["passed"] is True and j["seed"] == 1,
      "mode live, passed, seed 1 (%s, %s, %s)" % (j["mode"], j["passed"], j["seed"]))
m = j["messages"]
check(set(m) == {"sent", "refused", "delivered", "queued", "bounced", "lost", "duplicated"}
      and m["sent"] == 15 and m["delivered"] == 15 and m["lost"] == 0,
      "messages: 15 sent, 15 delivered, 0 lost (%s)" % m)
lines = [e["line"] for e in j["expectations"]]
check(all({"line", "ok", "seen", "at_ms"} <= set(e) for e in j["expectations"]) and
      all(e["ok"] for e in j["expectations"]) and lines == sorted(lines) and len(lines) == 11,
      "11 expectations, each with line, ok, seen, at_ms, in order (%s)" % lines)
ch = j["changes"]
check([c["what"] for c in ch] == ["refuse Internet", "accept Internet"] and
      all(isinstance(c["converged_ms"], int) and c["at_ms"] >= 0 for c in ch),
      "two changes, each with its convergence time (%s)" % ch)

for svg in ("topology.svg", "convergence.svg"):
    p = os.path.join(rep, svg)
    x = subprocess.run(["xmllint", "--noout", p], capture_output=True, text=True)
    check(x.returncode == 0, "%s is well-formed XML (%s)" % (svg, x.stderr.strip()[:200]))
topo = open(os.path.join(rep, "topology.svg")).read()
servers = re.findall(r'<g id="[^"]*" class="node server">\s*<title>([^<]*)</title>', topo) or \
    re.findall(r'<g class="node server"><title>([^<]*)</title>', topo)
servers = [html.unescape(s) for s in servers]  # Graphviz writes "-" as &#45;
check(sorted(servers) == ["GW-01", "MB-01"],
      "topology.svg: one server element per server of the organization (%s)" % servers)
check(os.path.exists(os.path.join(rep, "topology.dot")), "topology.dot is written")
conv = open(os.path.join(rep, "convergence.svg")).read()
points = re.findall(r'<circle class="change"', conv)
check(len(points) == len(ch), "convergence.svg: one point per state change (%d)" % len(points))

chromium = shutil.which("chromium") or shutil.which("chromium-browser")
check(chromium is not None, "headless Chromium is installed")
for svg in ("topology.svg", "convergence.svg"):
    png = os.path.join(W, svg + ".png")
    c = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--screenshot=" + png, "--window-size=1000,700",
                        "file://" + os.path.join(rep, svg)],
                       capture_output=True, text=True, timeout=120)
    ok = c.returncode == 0 and os.path.exists(png) and os.path.getsize(png) > 1000
    check(ok and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n",
          "Chromium renders %s to PNG (%d, %d octets)" %
          (svg, c.returncode, os.path.getsize(png) if os.path.exists(png) else 0))
shutil.rmtree(W, ignore_errors=True)
done()
