"""``python -m openseg``: the ``openseg`` command (how ``openseg serve`` starts its worker process)."""

from openseg.cli import app

if __name__ == "__main__":
    app(prog_name="openseg")
