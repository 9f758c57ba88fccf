"""Stand-in for ansible-test's get-pip.py, which ansible-test downloads from
https://ci-files.testing.ansible.com/ (not reachable from where make test runs: only PyPI is).

scripts/sanity.sh puts this file where ansible-test caches that download
(~/.ansible/test/cache/get_pip_<version>.py) when nothing is there yet. ansible-test runs it
with the interpreter of a new, pip-less sanity virtualenv and pip's install arguments
(``pip==24.2 --no-setuptools --no-wheel``): ensurepip installs the pip wheel that ships with
that Python, and that pip then installs exactly what ansible-test asked for from PyPI.
"""
import subprocess
import sys

args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + args))
