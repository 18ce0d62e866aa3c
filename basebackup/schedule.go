package basebackup

// Defaults of the sidecar's backup schedule: 00:30 every night, Berlin
// time (the hoster's 00:00–01:00 CET window).
const (
	DefaultSchedule = "30 0 * * *"
	DefaultTimezone = "Europe/Berlin"
)
