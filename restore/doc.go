// Package restore plans a point-in-time recovery (a pure function of what
// the repository holds) and carries it out: unpacks the chosen base
// backup into a data directory, safely, and writes the recovery settings.
// Starting PostgreSQL stays the DBA's step.
package restore
