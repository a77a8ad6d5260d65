#!/bin/sh
# run.sh STOWAGED — start stowaged on 127.0.0.1:8080 with its state under ./var,
# a default image storage with one directory volume, and show the admin token.
set -eu
bin=${1:-build/stowaged}
mkdir -p var/volumes/default
if [ ! -f var/stowaged.json ]; then
    cat > var/stowaged.json <<'JSON'
{
  "listen": "127.0.0.1:8080",
  "state_dir": "./var",
  "storages": [
    {
      "id": "default",
      "name": "default",
      "description": "created by make run",
      "volumes": [
        { "id": "default-dir", "kind": "external", "mount_point": "./var/volumes/default" }
      ]
    }
  ]
}
JSON
fi
if [ -f var/admin.token ]; then
    echo "admin token: $(cat var/admin.token)"
fi
echo "try: curl -H \"Authorization: Bearer \$(cat var/admin.token)\" http://127.0.0.1:8080/imagestorages/default"
exec "$bin" --config var/stowaged.json
