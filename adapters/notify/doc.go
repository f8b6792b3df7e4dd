// Package notify delivers the notifications of the backup ledger: webhook
// POSTs and e-mails through an SMTP relay.
//
// Deliveries are durable. EnqueueWebhook and EnqueueEmail publish a job on
// the work-queue stream NOTIFY and return once the server has stored it;
// Run, in any number of processes, fetches the jobs through the one durable
// pull consumer notify-worker and delivers them, so that a job survives a
// restart of the process that enqueued it and of the one that delivers it.
// Run uses the work-queue runner that the ledger's queues use too
// (adapters/internal/workqueue): fetch, deliver with heartbeats, and settle
// (acknowledge once the server confirms it, retry, hand back, or give up).
// Delivery is at least once: a receiver deduplicates by the header
// X-Backupledger-Delivery.
//
// # Streams, subjects and consumer
//
// These names are a contract with other processes and operators; never
// rename them.
//
//   - NOTIFY (StreamName): work-queue retention, file storage, subjects
//     notify.>. A webhook job is published on notify.webhook.<webhook id>
//     (SubjectWebhook), an e-mail job on notify.email (SubjectEmail). The body
//     is the job as JSON (WebhookJob, EmailJob); the header Nats-Msg-Id is the
//     job's delivery id, so that a job enqueued twice within DuplicateWindow
//     is stored once. A job leaves the stream when it is delivered, given up,
//     dropped or undecodable.
//   - notify-worker (ConsumerName): the durable pull consumer on NOTIFY with
//     the filter notify.>, explicit acknowledgements, unbounded deliveries
//     (Config.RetryFor bounds the retries instead) and an ack wait comfortably
//     above the longest delivery (see ConsumerConfig).
//   - NOTIFY_LOG (LogStreamName): limits retention, file storage, subjects
//     notifylog.>. Every delivery attempt of a webhook is an Attempt (JSON) on
//     notifylog.<webhook id>; at most Config.LogPerWebhook entries per webhook
//     are kept, none older than Config.LogMaxAge. Deliveries reads it.
//
// # Retries
//
// The attempt number is the delivery count of the message (NumDelivered),
// so it survives a restart; a job handed back by a stopping process counts
// as a delivery too, so the numbers of the log may have gaps. A failed
// attempt is retried after Config.Backoff, doubled for every attempt up to
// Config.MaxBackoff (less up to 20% jitter), until the job was stored longer
// than Config.RetryFor ago: then it is given up. A webhook answer 410 Gone, a
// webhook URL that is not http(s), and an SMTP answer 5xx give up at once.
//
// # Webhook requests
//
// A webhook delivery is a POST of WebhookJob.Body to the webhook's URL with
// the headers Content-Type: application/json, User-Agent (Config.UserAgent),
// X-Backupledger-Signature (Sign of the body with the webhook's secret),
// X-Backupledger-Event (the event type), X-Backupledger-Delivery (the
// delivery id) and X-Backupledger-Attempt (the attempt number). Any 2xx
// answer is a success; redirects are not followed, a 3xx is a failure.
package notify

import "time"

// Names on the server. They are part of the contract with other processes
// and operators: never rename them.
const (
	// StreamName is the work-queue stream of the jobs to deliver.
	StreamName = "NOTIFY"
	// LogStreamName is the stream of the delivery log of the webhooks.
	LogStreamName = "NOTIFY_LOG"
	// ConsumerName is the durable pull consumer on StreamName that the
	// workers of all processes share. Renaming it would leave the jobs of the
	// old consumer undelivered.
	ConsumerName = "notify-worker"
	// SubjectWebhook starts the subject of a webhook job; "." and the webhook
	// id follow.
	SubjectWebhook = "notify.webhook"
	// SubjectEmail is the subject of the e-mail jobs.
	SubjectEmail = "notify.email"
	// SubjectAll matches every job of StreamName.
	SubjectAll = "notify.>"
	// LogSubjectPrefix starts the subject of a webhook's delivery log; the
	// webhook id follows.
	LogSubjectPrefix = "notifylog."
	// LogSubjectAll matches the delivery log of every webhook.
	LogSubjectAll = LogSubjectPrefix + ">"
)

// DuplicateWindow is how long StreamName remembers a Nats-Msg-Id: a job
// enqueued again within it is stored once, also when the first one was
// delivered meanwhile.
const DuplicateWindow = time.Hour

// Headers of a webhook request.
const (
	// HeaderSignature carries Sign of the body with the webhook's secret.
	HeaderSignature = "X-Backupledger-Signature"
	// HeaderEvent carries the event type; e-mails carry it too.
	HeaderEvent = "X-Backupledger-Event"
	// HeaderDelivery carries the delivery id, the same on every attempt:
	// receivers deduplicate by it.
	HeaderDelivery = "X-Backupledger-Delivery"
	// HeaderAttempt carries the attempt number, from 1.
	HeaderAttempt = "X-Backupledger-Attempt"
)

// Results of an Attempt.
const (
	// ResultDelivered means the receiver answered 2xx.
	ResultDelivered = "delivered"
	// ResultFailed means the attempt failed and the delivery is retried.
	ResultFailed = "failed"
	// ResultGaveUp means the attempt failed and it was the last one.
	ResultGaveUp = "gave_up"
	// ResultDropped means the webhook was removed; nothing was sent.
	ResultDropped = "dropped"
)

// WebhookSubject returns the subject of the jobs of webhook id:
// notify.webhook.<id>.
func WebhookSubject(id string) string { return SubjectWebhook + "." + id }

// LogSubject returns the subject of the delivery log of webhook id:
// notifylog.<id>.
func LogSubject(id string) string { return LogSubjectPrefix + id }
