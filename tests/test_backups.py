"""The backups' own bookkeeping: dumps pruned with the backups pgBackRest expired, a changed byte
in a dump found by its checksum, and the pgBackRest configuration rendered from the postgresql
role's templates (the same files a host gets)."""

from __future__ import annotations

from pathlib import Path

from devstack import backups
from devstack.postgres import render
from devstack.settings import StackSettings


def dump_set(root: Path, label: str) -> Path:
    folder = root / label
    folder.mkdir(parents=True)
    (folder / "core.dump").write_bytes(b"PGDMP core " + label.encode())
    (folder / "SHA256SUMS").write_text(f"{backups.sha256(folder / 'core.dump')}  core.dump\n")
    return folder


def test_dumps_go_with_the_backups_retention_expired(tmp_path):
    config = StackSettings(state_dir=tmp_path / "var", backup_repo=tmp_path / "repo")
    root = backups.dumps_root(config)
    for label in ("20261201-020000F", "20261202-020000F", "20261203-020000F"):
        dump_set(root, label)
    kept = {"backup": [{"label": "20261202-020000F"}, {"label": "20261203-020000F"}]}
    assert backups.prune_dumps(config, kept) == ["20261201-020000F"]
    assert sorted(path.name for path in root.iterdir()) == ["20261202-020000F", "20261203-020000F"]


def test_a_dump_that_changed_fails_its_checksum(tmp_path):
    folder = dump_set(tmp_path, "20261203-020000F")
    assert backups.verify_dumps(folder)
    dump = folder / "core.dump"
    dump.write_bytes(dump.read_bytes()[:-1] + b"X")
    assert not backups.verify_dumps(folder)
    (folder / "SHA256SUMS").unlink()
    assert not backups.verify_dumps(folder)


def test_the_archive_command_names_the_configuration_and_stanza_the_backups_use():
    values = {
        "postgresql_pgbackrest_config": backups.CONFIG,
        "postgresql_pgbackrest_stanza": backups.STANZA,
        "postgresql_archive_timeout": backups.ARCHIVE_TIMEOUT,
        "postgresql_max_slot_wal_keep_size": backups.MAX_SLOT_WAL_KEEP,
    }
    archiving = render("archiving.conf.j2", **values)
    assert "archive_mode = on" in archiving
    assert (
        f"archive_command = 'pgbackrest --config={backups.CONFIG} --stanza={backups.STANZA} "
        "archive-push %p'"
    ) in archiving
    assert "archive_timeout = 60" in archiving
