// Package basebackup takes base backups over the replication protocol
// (BASE_BACKUP, PostgreSQL 15+ framing: one COPY stream of typed
// messages), streams each tar archive through the seal pipeline into the
// repository in parts, and writes backup.json last, once the WAL the
// backup needs is in the repository.
package basebackup
