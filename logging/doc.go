// Package logging builds edge-agent's slog handlers: text or JSON (config keys log.level and
// log.format), journald-aware, and with repeated warnings and errors rate-limited so that an
// outage of any length writes a bounded log.
//
//   - Under journald (JOURNAL_STREAM names the stream stderr is; see UnderJournald) every line
//     starts with its syslog priority (<3> error, <4> warning, <6> info, <7> debug), which journald
//     strips and stores as the entry's PRIORITY, and carries no timestamp of its own (journald
//     stamps each entry). Otherwise lines are as slog writes them, time first.
//   - Repeats wraps any handler: a warning or error logged again with the same message and the
//     same error (in the same With/WithGroup scope) is written the first Burst times, then at most
//     once per Every, that line saying how many were held back: "… (repeated 57 times in the last
//     minute)". Attributes that change from one occurrence to the next (an attempt number, a retry
//     delay) do not make a new kind; digits inside the error text do not either.
//
// The redact handler (package redact) goes outside these, so every handler here sees text that is
// already scrubbed of secrets: New's result is what cmd/agent wraps with redact.NewHandler.
//
// Concurrency: every handler here is safe for concurrent use, as slog requires; handlers derived with
// WithAttrs or WithGroup share their parent's writer and repeat counts. No goroutines are started.
package logging
