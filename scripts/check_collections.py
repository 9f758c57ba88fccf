"""Check that the collections installed in this virtualenv satisfy requirements.yml.

The `ansible` package from PyPI bundles the community collections this project uses,
so no Galaxy access is needed; this check fails loudly if a bundled version falls
outside the ranges that requirements.yml (and galaxy.yml) declare.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from ansible.galaxy.dependency_resolution.versioning import meets_requirements


def installed_collections() -> dict[str, str]:
    import ansible_collections  # namespace package provided by the `ansible` wheel

    found: dict[str, str] = {}
    for root in ansible_collections.__path__:
        for manifest in Path(root).glob("*/*/MANIFEST.json"):
            info = json.loads(manifest.read_text())["collection_info"]
            found.setdefault(f"{info['namespace']}.{info['name']}", info["version"])
    return found


def main(path: str) -> int:
    wanted = yaml.safe_load(Path(path).read_text())["collections"]
    have = installed_collections()
    bad = []
    for item in wanted:
        name, spec = item["name"], str(item.get("version", "*"))
        version = have.get(name)
        if version is None:
            bad.append(f"{name}: not installed (want {spec})")
        elif not meets_requirements(version, spec):
            bad.append(f"{name}: {version} installed, {spec} required")
    if bad:
        print("collections do not satisfy " + path + ":\n  " + "\n  ".join(bad), file=sys.stderr)
        print("fix: pin an `ansible` release in requirements.txt that bundles them, "
              "or run `ansible-galaxy collection install -r requirements.yml`.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.yml"))
