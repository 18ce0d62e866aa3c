// Package archive stores and retrieves WAL files in a repository: the work
// behind PostgreSQL's archive_command (Push) and restore_command (Fetch,
// with a prefetching spool). It joins the wal names, the catalog layout,
// sealing and a storage backend.
package archive
