"""schema/openapi.yaml describes exactly the routes the daemon serves."""
import os
import re
import subprocess

import yaml

from fixtures.daemon import REPO, binary


def norm(path):
    """Placeholders compare by position, trailing slashes are optional (as in the router)."""
    return re.sub(r"\{[^}]+\}", "{}", path.rstrip("/") or "/")


def test_openapi_lists_every_route_and_no_other():
    doc = yaml.safe_load(open(os.path.join(REPO, "schema", "openapi.yaml")))
    documented = {(m.upper(), norm(p)) for p, ops in doc["paths"].items() for m in ops
                  if m in ("get", "put", "post", "delete", "patch", "head", "options")}
    out = subprocess.run([binary(), "routes"], capture_output=True, text=True, check=True).stdout
    served = {(line.split()[0], norm(line.split()[1])) for line in out.splitlines()}
    assert served - documented == set(), "routes missing from openapi.yaml"
    assert documented - served == set(), "openapi.yaml documents routes nobody serves"


def test_openapi_marks_only_unauthenticated_routes_as_public():
    doc = yaml.safe_load(open(os.path.join(REPO, "schema", "openapi.yaml")))
    public = {(m.upper(), norm(p)) for p, ops in doc["paths"].items() for m, op in ops.items()
              if isinstance(op, dict) and op.get("security") == []}
    out = subprocess.run([binary(), "routes"], capture_output=True, text=True, check=True).stdout
    none = {(l.split()[0], norm(l.split()[1])) for l in out.splitlines() if l.split()[2] == "none"}
    assert public == none
