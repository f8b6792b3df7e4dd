package notify

// Backoff exposes the retry delay after an attempt to the tests.
var Backoff = (*Notifier).backoff
