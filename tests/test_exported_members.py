"""`openseg/__init__.py` declares exactly its public names (httpx's test_exported_members)."""

import openseg


def test_all_names_exist() -> None:
    for name in openseg.__all__:
        assert hasattr(openseg, name), name
    public = {n for n in vars(openseg) if not n.startswith("_") and not isinstance(getattr(openseg, n), type(openseg))}
    assert public <= set(openseg.__all__), public - set(openseg.__all__)
